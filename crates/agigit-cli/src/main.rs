//! `agigit`: git for AI models over Nostr, on the command line — thin porcelain over the
//! `agigit` library: one function per command, taking its arguments, in a file per group.

mod context;
#[cfg(feature = "eval")]
mod eval;
mod failure;
mod history;
mod order;
mod receipts;
mod remote;
#[cfg(feature = "eval")]
mod round;
mod serve;
mod setup;
mod view;
mod wallet;

use std::path::PathBuf;
use std::process::ExitCode;

use agigit::display::escape;
use clap::{Parser, Subcommand};

use crate::context::Ctx;
use crate::failure::{EXIT_CODES, Failure, exit_code};

/// What `--help` says after the commands: how to name commits, and the exit codes.
fn after_help() -> String {
    format!("{REVISIONS}\n\n{EXIT_CODES}")
}

/// How commands that take a revision read it.
const REVISIONS: &str = "\
Revisions (log, show, diff, checkout, merge, rebase, pull, branch):
  HEAD, @         the commit checked out
  master          a branch; then a tag (v1); then a remote branch (origin/master)
  3f2a9c1e07bd    a commit by its id or any unique start of it, 4 digits or more
                  (every id agigit prints is accepted back; an ambiguous start lists
                  the commits it could be)
  REV~n, REV^n    the n-th first-parent ancestor; the n-th parent of a merge

Parts and paths (after `--` in log, show, diff, checkout):
  code, params, data/train (train), data/validation (validation)   a whole part
  train.py, data/train/rows.csv, configs/                         a file or a directory";

/// git for AI models, decentralized over Nostr.
#[derive(Debug, Parser)]
#[command(name = "agigit", version, after_long_help = after_help())]
struct Cli {
    /// Run as if started in this directory.
    #[arg(short = 'C', global = true, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Print results as JSON (for scripts).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a repository in DIR (default: here); files already there are kept.
    Init(setup::InitArgs),
    /// Clone a repository (`30717:<owner hex>:<id>`) from relays into DIR.
    Clone(setup::CloneArgs),
    /// Start a fine-tune: clone a foundation repository into DIR as a fork. Its commits store
    /// tensors as deltas against the foundation, and it pushes under its own id.
    Fork(setup::ForkArgs),
    /// Manage the readers of a private repository.
    Reader(setup::ReaderArgs),
    /// Manage relays.
    Relay(remote::RelayArgs),
    /// Show how the working directory differs from HEAD.
    Status,
    /// Check the working directory's files (safetensors headers included) and show what the
    /// next commit will record. agigit has no staging area: a commit records the directory.
    Add,
    /// Record the working directory as a new commit.
    Commit(history::CommitArgs),
    /// Show history.
    Log(history::LogArgs),
    /// Show a commit and what it changed: per part, per file, and for safetensors per tensor
    /// (dtype and shape, share of elements changed, ‖Δ‖/‖W‖, how each version is stored).
    Show(view::ShowArgs),
    /// Measure a commit's model on held-out data: cross-entropy in bits per byte (lower is
    /// better: the model compresses the text better), per document.
    #[cfg(feature = "eval")]
    Eval(eval::EvalArgs),
    /// List the evaluation receipts (signed scores on held-out data) the relays hold for a
    /// repository (default: this one), every signature checked; `eval --publish` makes them.
    Receipts(receipts::ReceiptsArgs),
    /// Competition rounds (Proof of Work of Compression): announce one with a sealed test
    /// set, submit a fork, reveal, evaluate, challenge, rule, show the standing, publish the
    /// result.
    #[cfg(feature = "eval")]
    Round(round::RoundArgs),
    /// Show what changed between two revisions, or a revision (default HEAD) and the working
    /// directory, as `show` does; `-- <part|path>` narrows it.
    Diff(view::DiffArgs),
    /// List branches, create one (at HEAD or a revision), or delete one (-d, -D).
    Branch(history::BranchArgs),
    /// List tags, name a commit (-m for an annotated tag), or delete one (-d). A push
    /// publishes the tags on the pushed history; a fetch brings the remote's in.
    Tag(history::TagArgs),
    /// Switch to a branch or commit. Local changes to files that are the same in both are kept.
    Checkout(history::CheckoutArgs),
    /// Merge branches or commits into the current branch (`merge A B`: both, in one merge
    /// commit, as git does). Tensors both sides changed conflict unless a strategy is given.
    Merge(history::MergeArgs),
    /// Replay the current branch's commits on top of a commit (default: the remote branch).
    /// With --fork, move a fork onto a new foundation commit instead.
    Rebase(history::RebaseArgs),
    /// Push the current branch to the push relays, holding every pack to a durability target
    /// (default: the most the erasure code gives on these servers) and saying what it got.
    Push(remote::PushArgs),
    /// Publish the repository's announcement (kind 30717: name, description, licence,
    /// visibility, maintainers, topics, relays, blob servers, foundation), after setting any
    /// field given; a push publishes it too.
    Announce(remote::AnnounceArgs),
    /// Find repositories: the announcements on the relays, filtered by words in their id,
    /// name, description and topics, newest update first.
    Search(remote::SearchArgs),
    /// Audit the remote (--remote): which shards each server still holds of every pack the
    /// remote's refs reach, and how many servers may still be lost. Fails (exit 7) when a pack
    /// is below its target.
    Fsck(remote::FsckArgs),
    /// Rebuild the shards missing from every segment below its durability target (from any k
    /// of them) and upload them to the push servers that answer, least loaded first; the pack
    /// manifests too. Idempotent: run it again after a failure, or after `relay add`.
    Repair(remote::RepairArgs),
    /// Delete your blobs on the push servers that none of your repositories references any
    /// more (--remote), after a grace period; --dry-run says what would go.
    Gc(remote::GcArgs),
    /// Fetch and fast-forward a branch (default: the current one) from the fetch relays.
    Pull(remote::PullArgs),
    /// Fetch the remote branch without touching local branches or files.
    Fetch(remote::FetchArgs),
    /// Browse repositories in a web browser: list and search, history graph, tensor diffs,
    /// downloads (on loopback only).
    Serve(serve::ServeArgs),
    /// Manage your Nostr key.
    Key(setup::KeyArgs),
    /// The market's wallet: Cashu ecash at a mint, for your key (balance, top-up, receive,
    /// send).
    Wallet(wallet::WalletArgs),
    /// The market's pull orders: post one, take, fund, deliver, confirm, dispute, rule, claim,
    /// refund; list yours and show one, with what happens next if nobody acts.
    Order(order::OrderArgs),
}

fn run(cli: &Cli) -> failure::Result<()> {
    let ctx = Ctx {
        dir: cli.dir.clone(),
        json: cli.json,
    };
    match &cli.command {
        Command::Init(args) => setup::init(&ctx, args),
        Command::Clone(args) => setup::clone(&ctx, args),
        Command::Fork(args) => setup::fork(&ctx, args),
        Command::Reader(args) => setup::reader(&ctx, args),
        Command::Key(args) => setup::key(&ctx, args),
        Command::Relay(args) => remote::relay(&ctx, args),
        Command::Status | Command::Add => history::status(&ctx),
        Command::Commit(args) => history::commit(&ctx, args),
        Command::Log(args) => history::log(&ctx, args),
        Command::Show(args) => view::show(&ctx, args),
        Command::Diff(args) => view::diff(&ctx, args),
        Command::Receipts(args) => receipts::receipts(&ctx, args),
        #[cfg(feature = "eval")]
        Command::Round(args) => round::round(&ctx, args),
        #[cfg(feature = "eval")]
        Command::Eval(args) => eval::eval(&ctx, args),
        Command::Branch(args) => history::branch(&ctx, args),
        Command::Tag(args) => history::tag(&ctx, args),
        Command::Checkout(args) => history::checkout(&ctx, args),
        Command::Merge(args) => history::merge(&ctx, args),
        Command::Rebase(args) => history::rebase(&ctx, args),
        Command::Push(args) => remote::push(&ctx, args),
        Command::Announce(args) => remote::announce(&ctx, args),
        Command::Search(args) => remote::search(&ctx, args),
        Command::Fsck(args) => remote::fsck(&ctx, args),
        Command::Repair(args) => remote::repair(&ctx, args),
        Command::Gc(args) => remote::gc(&ctx, args),
        Command::Pull(args) => remote::pull(&ctx, args),
        Command::Fetch(args) => remote::fetch(&ctx, args),
        Command::Serve(args) => serve::serve(&ctx, args),
        Command::Wallet(args) => wallet::wallet(&ctx, args),
        Command::Order(args) => order::order(&ctx, args),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure { kind, message }) => {
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"error": message, "kind": kind.as_str()})
                );
            } else {
                eprintln!("agigit: {}", escape(&message));
            }
            ExitCode::from(exit_code(kind))
        }
    }
}
