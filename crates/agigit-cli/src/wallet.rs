//! `agigit wallet`: the market's Cashu wallet — ecash at one mint, for the user's key, kept under
//! the agigit home with the same care as the key file.

use agigit::ErrorKind;
use agigit_market::ledger::Ledger as _;
use agigit_market_cashu::{CashuError, CashuWallet};
use clap::{Args, Subcommand};

use crate::context::{Ctx, home, keys, load_user_config, npub, print, runtime};
use crate::failure::{Failure, Result};

#[derive(Debug, Args)]
pub(crate) struct WalletArgs {
    /// The mint (`http://` or `https://`); default: `[wallet] mint` in the user's config.toml.
    #[arg(long, global = true)]
    mint: Option<String>,
    #[command(subcommand)]
    action: WalletAction,
}

#[derive(Debug, Subcommand)]
enum WalletAction {
    /// What the wallet holds at the mint, in sats.
    Balance,
    /// Buy AMOUNT sats of ecash from the mint: prints its Lightning invoice and waits (a
    /// minute at most) for it to be paid. A testing mint pays its own.
    TopUp {
        /// Sats.
        amount: u64,
    },
    /// Take a token (`cashuB…`) into the wallet. It is swapped at the mint at once, so whoever
    /// gave it can no longer spend it.
    Receive {
        /// The token.
        token: String,
    },
    /// Make a token of AMOUNT sats to give someone. It leaves the wallet now: whoever holds the
    /// token can spend it, so send it privately.
    Send {
        /// Sats.
        amount: u64,
    },
}

impl From<CashuError> for Failure {
    fn from(e: CashuError) -> Self {
        let kind = match &e {
            CashuError::Mint { .. } | CashuError::Unpaid { .. } => ErrorKind::Network,
            CashuError::Store { .. } => ErrorKind::Io,
            CashuError::NotAsAgreed(_) => ErrorKind::Integrity,
            CashuError::NotAParty { .. } | CashuError::Consents => ErrorKind::Access,
            _ => ErrorKind::Invalid,
        };
        Failure::new(kind, e.to_string())
    }
}

/// The user's wallet at `mint` (or the configured one): `<agigit home>/wallet`, owner-only.
pub(crate) fn open(mint: Option<&str>) -> Result<CashuWallet> {
    let configured = load_user_config()?.wallet.and_then(|w| w.mint);
    let mint = mint.map(str::to_owned).or(configured).ok_or_else(|| {
        Failure::invalid(
            "no mint: pass --mint http(s)://… or set [wallet] mint = \"…\" in ~/.config/agigit/config.toml",
        )
    })?;
    if !(mint.starts_with("http://") || mint.starts_with("https://")) {
        return Err(Failure::invalid(format!(
            "{mint:?} is not a mint's URL (http:// or https://)"
        )));
    }
    Ok(CashuWallet::open(&mint, &home()?.join("wallet"), keys()?)?)
}

/// Where this user keeps a token it locked (`what`: `orders`, `rounds`; `name`: whose it is):
/// `<agigit home>/wallet/<what>/<name>.token`. A locked token is the locker's money until the
/// payee claims it: kept before it is published, so that a failed publish loses nothing.
pub(crate) fn kept(what: &str, name: &str) -> Result<std::path::PathBuf> {
    Ok(home()?
        .join("wallet")
        .join(what)
        .join(format!("{name}.token")))
}

/// Writes `token` to `path` (new, owner-only, synced); the error carries the token itself, so
/// the funds are never lost with the file.
pub(crate) fn keep(path: &std::path::Path, token: &str) -> Result<()> {
    crate::context::write_new_private(path, format!("{token}\n").as_bytes()).map_err(|e| {
        Failure::new(
            ErrorKind::Io,
            format!(
                "{}: {e}; the escrow was locked: its token is {token}",
                path.display()
            ),
        )
    })
}

/// Pays blob servers' `402 Payment Required` from the user's wallet, request by request,
/// within `[wallet] budget` sats for the whole command. The wallet is opened at the first
/// payment; payments are made one at a time, so the budget is never overrun.
#[derive(Debug)]
pub(crate) struct BudgetPayer {
    mint: String,
    state: tokio::sync::Mutex<(Option<CashuWallet>, u64)>,
}

impl BudgetPayer {
    /// The payer `[wallet]` in the user's config asks for: `None` without a mint or budget.
    pub(crate) fn configured() -> Result<Option<Self>> {
        let Some(w) = load_user_config()?.wallet else {
            return Ok(None);
        };
        Ok(match (w.mint, w.budget) {
            (Some(mint), Some(budget)) if budget > 0 => Some(Self {
                mint,
                state: tokio::sync::Mutex::new((None, budget)),
            }),
            _ => None,
        })
    }
}

impl agigit::net::BlobPayer for BudgetPayer {
    fn pay<'a>(
        &'a self,
        server: &'a str,
        request: &'a str,
    ) -> agigit::net::BoxFuture<'a, std::result::Result<String, String>> {
        Box::pin(async move {
            let mut state = self.state.lock().await;
            if state.0.is_none() {
                state.0 = Some(open(Some(&self.mint)).map_err(|e| e.message)?);
            }
            let left = state.1;
            let wallet = state.0.as_ref().ok_or("no wallet")?;
            let (paid, token) = wallet.pay_request(request, left).await.map_err(|e| {
                format!("{e} ({left} sats of this command's budget left: `[wallet] budget` in config.toml)")
            })?;
            state.1 = left - paid;
            eprintln!("paid {server} {paid} sats ({} left of the budget)", state.1);
            Ok(token)
        })
    }
}

pub(crate) fn wallet(ctx: &Ctx, args: &WalletArgs) -> Result<()> {
    let rt = runtime()?;
    let w = open(args.mint.as_deref())?;
    let owner = npub(&w.owner())?;
    let mint = w.mint_url().to_owned();
    match &args.action {
        WalletAction::Balance => {
            let sats = rt.block_on(w.balance())?;
            print(
                ctx.json,
                serde_json::json!({"mint": mint, "owner": owner, "balance": sats}),
                || format!("{sats} sats at {mint} (wallet of {owner})"),
            );
        }
        WalletAction::TopUp { amount } => {
            let got = rt.block_on(w.top_up(*amount))?;
            let sats = rt.block_on(w.balance())?;
            print(
                ctx.json,
                serde_json::json!({"mint": mint, "minted": got, "balance": sats}),
                || format!("minted {got} sats at {mint}; the wallet holds {sats}"),
            );
        }
        WalletAction::Receive { token } => {
            let got = rt.block_on(w.receive(token.trim()))?;
            let sats = rt.block_on(w.balance())?;
            print(
                ctx.json,
                serde_json::json!({"mint": mint, "received": got, "balance": sats}),
                || format!("received {got} sats; the wallet holds {sats}"),
            );
        }
        WalletAction::Send { amount } => {
            let token = rt.block_on(w.send(*amount))?;
            let sats = rt.block_on(w.balance())?;
            print(
                ctx.json,
                serde_json::json!({"mint": mint, "sent": amount, "token": token, "balance": sats}),
                || format!("{token}\n({amount} sats; the wallet holds {sats})"),
            );
        }
    }
    Ok(())
}
