//! `agigit reader` and `agigit key`: who may read a private repository, and the user's keys.

use super::*;

/// `agigit reader`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct ReaderArgs {
    #[command(subcommand)]
    pub(crate) action: ReaderAction,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ReaderAction {
    /// Let a Nostr key read the repository (from the next push on; earlier content too).
    Add {
        /// npub… or hex.
        key: String,
    },
    /// Remove a reader: the content key is rotated, so nothing pushed from now on opens with
    /// their key. What was pushed before stays readable to a key that already held it.
    Remove {
        /// npub… or hex.
        key: String,
    },
    /// List the readers.
    List,
}

/// `agigit key`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct KeyArgs {
    #[command(subcommand)]
    pub(crate) action: KeyAction,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeyAction {
    /// Create a new key in the key file (mode 0600).
    Generate {
        /// Replace an existing key.
        #[arg(long)]
        force: bool,
    },
    /// Store an existing secret key (nsec… or hex) in the key file.
    Import {
        /// The secret key.
        secret: String,
        /// Replace an existing key.
        #[arg(long)]
        force: bool,
    },
    /// Show the public key (npub and hex).
    Show,
    /// Publish, signed by your key, your relay list (NIP-65, kind 10002: your user-level
    /// relays, `write` for those you push to, `read` for those you fetch from) and your Blossom
    /// server list (BUD-03, kind 10063: the same hosts' blob servers), so that others find your
    /// repositories by your key alone.
    PublishLists,
}

pub(crate) fn reader(ctx: &Ctx, args: &ReaderArgs) -> Result<()> {
    let json = ctx.json;
    let ReaderArgs { action } = args;
    let repo = open(ctx)?;
    let keys = keys()?;
    let secret = reader_secret(&keys)?;
    let mut private = repo.private_keys(&secret)?.ok_or_else(|| {
        Failure::invalid("this repository is public: create it with `agigit init --private`")
    })?;
    match action {
        ReaderAction::Add { key } => {
            private.add_reader(&parse_reader(key)?)?;
            repo.save_private_keys(&private)?;
        }
        ReaderAction::Remove { key } => {
            let reader = parse_reader(key)?;
            if reader == secret.public_key() {
                return Err(Failure::invalid(
                    "you cannot remove your own key: you would lock yourself out",
                ));
            }
            if !private.remove_reader(&reader)? {
                return Err(Failure::invalid(format!(
                    "{key} is not a reader: see `agigit reader list`"
                )));
            }
            repo.save_private_keys(&private)?;
        }
        ReaderAction::List => {}
    }
    let list: Vec<String> = private
        .readers()
        .filter_map(|r| {
            agigit::event::nostr::prelude::PublicKey::from_slice(&r.to_bytes())
                .ok()
                .and_then(|pk| npub(&pk).ok())
        })
        .collect();
    print(json, serde_json::json!({"readers": list}), || {
        let mut out = list.join("\n");
        match action {
                ReaderAction::Add { .. } => out.push_str(
                    "\n(the change reaches the relays with the next push; the new reader opens everything, earlier pushes included)",
                ),
                ReaderAction::Remove { .. } => out.push_str(&format!(
                    "\n(a new content key, epoch {}, seals everything pushed from now on, which the removed reader cannot open; what was pushed before stays readable to a key that already held it)",
                    private.epoch()
                )),
                ReaderAction::List => {}
            }
        out
    });
    Ok(())
}

pub(crate) fn key(ctx: &Ctx, args: &KeyArgs) -> Result<()> {
    let json = ctx.json;
    let KeyArgs { action } = args;
    match action {
        KeyAction::Generate { force } => {
            let keys = Keys::generate();
            let path = write_key(&keys.secret_key().to_secret_hex(), *force)?;
            let npub = npub(&keys.public_key())?;
            print(
                json,
                serde_json::json!({"npub": npub, "file": path}),
                || format!("new key {npub}, secret in {} (mode 0600)", path.display()),
            );
        }
        KeyAction::Import { secret, force } => {
            let keys = Keys::parse(secret.trim())
                .map_err(|e| Failure::invalid(format!("not a secret key (nsec… or hex): {e}")))?;
            let path = write_key(&keys.secret_key().to_secret_hex(), *force)?;
            let npub = npub(&keys.public_key())?;
            print(
                json,
                serde_json::json!({"npub": npub, "file": path}),
                || format!("imported {npub} into {}", path.display()),
            );
        }
        KeyAction::PublishLists => {
            let keys = keys()?;
            let relays = crate::context::load_user_config()?.relays;
            if relays.is_empty() {
                return Err(Failure::invalid(
                    "no relays in ~/.config/agigit/config.toml to list: add [[relay]] url = \"wss://…\" entries",
                ));
            }
            let (relay_list, server_list) = user_lists(&keys, &relays)?;
            let rt = runtime()?;
            let _entered = rt.enter();
            // Every relay of the list gets it, whatever its role: that is where others look.
            let everywhere: Vec<RelayEntry> = relays
                .iter()
                .map(|r| RelayEntry {
                    fetch: true,
                    push: true,
                    ..r.clone()
                })
                .collect();
            let net = network(&keys, &everywhere)?;
            let mut accepted = Vec::new();
            for event in [&relay_list, &server_list] {
                let report = rt.block_on(agigit::net::Transport::publish(&net, event, 1))?;
                accepted.push(report.accepted());
            }
            print(
                json,
                serde_json::json!({"relay_list": relay_list.id.to_hex(), "server_list": server_list.id.to_hex(), "accepted": accepted}),
                || {
                    format!(
                        "published your relay list ({} relays) and Blossom server list to {} relays",
                        relays.len(),
                        accepted[0]
                    )
                },
            );
        }
        KeyAction::Show => {
            let keys = keys()?;
            let npub = npub(&keys.public_key())?;
            let hex = keys.public_key().to_hex();
            print(json, serde_json::json!({"npub": npub, "hex": hex}), || {
                format!("{npub}\n{hex}")
            });
        }
    }
    Ok(())
}

/// The user's NIP-65 relay list and BUD-03 server list for `relays`, signed by `keys`.
pub(super) fn user_lists(
    keys: &Keys,
    relays: &[RelayEntry],
) -> Result<(
    agigit::event::nostr::prelude::Event,
    agigit::event::nostr::prelude::Event,
)> {
    use agigit::event::Signer as _;
    use agigit::event::nostr::prelude::{Kind, Tag, Timestamp, UnsignedEvent};
    let bad = |e: &dyn std::fmt::Display| Failure::invalid(format!("a list tag: {e}"));
    let mut r_tags = Vec::new();
    for r in relays {
        let url = r.url.trim_end_matches('/');
        let tag = match (r.fetch, r.push) {
            (true, false) => Tag::parse(["r", url, "read"]),
            (false, true) => Tag::parse(["r", url, "write"]),
            _ => Tag::parse(["r", url]),
        };
        r_tags.push(tag.map_err(|e| bad(&e))?);
    }
    let (_, servers) = crate::remote::announced_places(relays, &[]);
    let server_tags = servers
        .iter()
        .map(|s| Tag::parse(["server", s.as_str()]).map_err(|e| bad(&e)))
        .collect::<Result<Vec<_>>>()?;
    let now = Timestamp::now();
    let sign = |kind: Kind, tags: Vec<Tag>| {
        keys.sign_event(UnsignedEvent::new(keys.public_key(), now, kind, tags, ""))
            .map_err(|e| Failure::invalid(format!("signing: {e}")))
    };
    Ok((
        sign(Kind::RelayList, r_tags)?,
        sign(
            agigit::event::kinds::kind(agigit::event::kinds::BLOB_SERVER_LIST),
            server_tags,
        )?,
    ))
}

/// Makes `repo` private for the user and `readers`.
pub(super) fn make_private(repo: &Repository, readers: &[String]) -> Result<()> {
    let keys = keys()?;
    let readers = readers
        .iter()
        .map(|r| parse_reader(r))
        .collect::<Result<Vec<_>>>()?;
    repo.make_private(&reader_secret(&keys)?, &readers)?;
    Ok(())
}
