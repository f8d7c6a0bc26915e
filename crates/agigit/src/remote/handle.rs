//! [`Remote`]: a repository connected to a transport and a signer — the handle push, fetch and
//! pull run on (like `gix::remote::Connection`), so a caller names the transport and the key
//! once and an embedder can swap either (its own [`Transport`], a remote [`Signer`]).

use agigit_event::{RepoCoordinate, RepoId, Signer};
use agigit_net::Transport;

use super::{FetchOptions, PullReport, PushOptions, PushReport, RemoteRefs};
use crate::repository::Repository;

/// A repository, a transport and a signer: see [`Repository::remote`].
pub struct Remote<'r, S: ?Sized> {
    repo: &'r Repository,
    transport: &'r dyn Transport,
    signer: &'r S,
}

impl<S: ?Sized> std::fmt::Debug for Remote<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("repository", &self.repo.root())
            .field("push_servers", &self.transport.push_servers())
            .finish_non_exhaustive()
    }
}

impl Repository {
    /// This repository connected to `transport`, pushing as `signer` (fetching needs no key of
    /// its own: a public repository's events are verified against their authors, a private
    /// one's opened with [`FetchOptions::secret`]).
    pub fn remote<'r, S: Signer + Sync + ?Sized>(
        &'r self,
        transport: &'r dyn Transport,
        signer: &'r S,
    ) -> Remote<'r, S> {
        Remote {
            repo: self,
            transport,
            signer,
        }
    }
}

impl<S: Signer + Sync + ?Sized> Remote<'_, S> {
    /// The repository.
    pub fn repository(&self) -> &Repository {
        self.repo
    }

    /// The transport.
    pub fn transport(&self) -> &dyn Transport {
        self.transport
    }

    /// The signer pushes are signed by.
    pub fn signer(&self) -> &S {
        self.signer
    }

    /// Pushes `branch` to the repository `repo_id` owned by the signer.
    ///
    /// # Errors
    /// As [`Repository::push`].
    pub async fn push(
        &self,
        repo_id: &RepoId,
        branch: &str,
        options: PushOptions<'_>,
    ) -> Result<PushReport, crate::push::Error> {
        self.repo
            .push(self.transport, self.signer, repo_id, branch, options)
            .await
    }

    /// Pushes `branch` to `repo`, which the signer owns or maintains.
    ///
    /// # Errors
    /// As [`Repository::push_to`].
    pub async fn push_to(
        &self,
        repo: &RepoCoordinate,
        branch: &str,
        options: PushOptions<'_>,
    ) -> Result<PushReport, crate::push::Error> {
        self.repo
            .push_to(self.transport, self.signer, repo, branch, options)
            .await
    }

    /// The remote's branches and default branch.
    ///
    /// # Errors
    /// As [`Repository::remote_refs`].
    pub async fn refs(&self, repo: &RepoCoordinate) -> Result<RemoteRefs, crate::fetch::Error> {
        self.repo.remote_refs(self.transport, repo).await
    }

    /// The remote's branches and default branch, a private repository's too when `options`
    /// give a reader's secret.
    ///
    /// # Errors
    /// As [`Repository::remote_refs_with`].
    pub async fn refs_with(
        &self,
        repo: &RepoCoordinate,
        options: &FetchOptions<'_>,
    ) -> Result<RemoteRefs, crate::fetch::Error> {
        self.repo
            .remote_refs_with(self.transport, repo, options)
            .await
    }

    /// Fetches every branch of `repo`.
    ///
    /// # Errors
    /// As [`Repository::fetch_all`].
    pub async fn fetch_all(
        &self,
        repo: &RepoCoordinate,
        options: FetchOptions<'_>,
    ) -> Result<std::collections::BTreeMap<String, PullReport>, crate::fetch::Error> {
        self.repo.fetch_all(self.transport, repo, options).await
    }

    /// Fetches `branch` of `repo` into `refs/remotes/origin/<branch>`, touching no local branch
    /// or file.
    ///
    /// # Errors
    /// As [`Repository::fetch`].
    pub async fn fetch(
        &self,
        repo: &RepoCoordinate,
        branch: &str,
        options: FetchOptions<'_>,
    ) -> Result<PullReport, crate::fetch::Error> {
        self.repo.fetch(self.transport, repo, branch, options).await
    }

    /// Fetches `branch` of `repo`, then fast-forwards the local branch and its files.
    ///
    /// # Errors
    /// As [`Repository::pull`].
    pub async fn pull(
        &self,
        repo: &RepoCoordinate,
        branch: &str,
        options: FetchOptions<'_>,
    ) -> Result<PullReport, crate::fetch::Error> {
        self.repo.pull(self.transport, repo, branch, options).await
    }

    /// Fetches one file or one tensor of `branch` of `repo` into the working directory,
    /// downloading only the segments that hold it.
    ///
    /// # Errors
    /// As [`Repository::pull_path`].
    pub async fn pull_path(
        &self,
        repo: &RepoCoordinate,
        branch: &str,
        want: &super::PartialWant,
        options: FetchOptions<'_>,
    ) -> Result<super::PartialReport, crate::fetch::Error> {
        self.repo
            .pull_path(self.transport, repo, branch, want, options)
            .await
    }
}
