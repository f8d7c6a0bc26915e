#![doc = include_str!("../README.md")]

use std::path::Path;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use agigit_market::ledger::{Escrow, Ledger};
use agigit_market::{Amount, Time};
use cdk::amount::SplitTarget;
use cdk::nuts::nut10::SpendingConditions;
use cdk::nuts::{
    Conditions, CurrencyUnit, KeySetInfo, PaymentMethod, Proof, Proofs, PublicKey as CashuKey,
    SecretKey as CashuSecret, SigFlag, State, Token,
};
use cdk::wallet::{ReceiveOptions, SendOptions, Wallet};
use nostr::prelude::{Keys, PublicKey};
use sha2::Digest as _;

/// The most proofs one locked token may carry: an escrow is one amount, which a mint splits
/// into at most 64 powers of two.
pub const MAX_PROOFS: usize = 64;

/// The most proofs a token of several escrows ([`CashuWallet::lock_schedule`]) may carry.
pub const MAX_SCHEDULE_PROOFS: usize = 256;

/// How long [`CashuWallet::top_up`] waits for a quote to be paid.
pub const TOP_UP_WAIT: Duration = Duration::from_secs(60);

/// What went wrong. No cdk or bitcoin type crosses this crate's API: the mint's and the
/// wallet's errors are carried as their messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CashuError {
    /// The mint refused, or could not be reached.
    #[error("the mint at {mint}: {message}")]
    Mint {
        /// The mint's URL.
        mint: String,
        /// What the mint or the wallet said.
        message: String,
    },
    /// The wallet's file could not be opened.
    #[error("the wallet's store at {path}: {message}")]
    Store {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A token that does not parse, or is from another mint or unit.
    #[error("the token: {0}")]
    Token(String),
    /// The locked funds are not what the escrow says.
    #[error("these funds are not locked as agreed: {0}")]
    NotAsAgreed(&'static str),
    /// The funds were already spent (claimed, refunded, or being spent): when verified, or
    /// when the mint refuses a claim, refund or receipt of them.
    #[error("these funds were already spent")]
    Spent,
    /// The wallet's key is not a party to the escrow.
    #[error("{key} is not a party to this escrow")]
    NotAParty {
        /// The key.
        key: PublicKey,
    },
    /// Fewer than two distinct parties' valid signatures.
    #[error("two distinct parties must consent, each with a valid signature on every proof")]
    Consents,
    /// A refund asked for before the refund time, by the mint's clock.
    #[error("only the payer may take it back alone, from {refund_at} on")]
    NotYetRefundable {
        /// The refund time.
        refund_at: Time,
    },
    /// Not enough funds.
    #[error("the wallet holds {have}, not the {need} asked for")]
    Insufficient {
        /// What it holds.
        have: Amount,
        /// What was asked.
        need: Amount,
    },
    /// A schedule locked only in part: the escrows before the one that failed are locked in
    /// `token` (each comes back to the payer from its refund time).
    #[error("{message}; what was locked before it is in the token {token}")]
    Partly {
        /// What is locked.
        token: String,
        /// Why the rest is not.
        message: String,
    },
    /// A quote still unpaid after [`TOP_UP_WAIT`].
    #[error("the mint quote {quote} was not paid within {TOP_UP_WAIT:?}: pay {request}")]
    Unpaid {
        /// The quote's id.
        quote: String,
        /// The payment request (a BOLT11 invoice) to pay.
        request: String,
    },
}

/// A Cashu wallet on one mint, in sats, acting for one Nostr key: the key that signs the
/// user's (or relay's) market events is the key its escrowed tokens are locked to.
///
/// Its proofs live in one file (`redb`) under the directory it is opened with; its seed is
/// derived from the key (SHA-512 of a label and the secret key), so the key alone restores
/// it (NUT-13).
pub struct CashuWallet {
    wallet: Wallet,
    keys: Keys,
    mint: String,
}

impl std::fmt::Debug for CashuWallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CashuWallet")
            .field("mint", &self.mint)
            .field("owner", &self.keys.public_key())
            .finish_non_exhaustive()
    }
}

/// Funds locked for a payee: a Cashu token (`cashuB…`) whose every proof is P2PK-locked to the
/// payee, with the payer and the arbiter as further keys, 2 signatures required, and the
/// payer's refund from the locktime. The payer hands it to the payee (in an order action, say):
/// it is spendable by nobody else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CashuLock {
    token: String,
}

impl CashuLock {
    /// The token as sent: `cashuB…`.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// A lock as received from a peer; checked by [`Ledger::verify`] before anything relies
    /// on it.
    pub fn from_token(token: impl Into<String>) -> Self {
        Self {
            token: token.into(),
        }
    }
}

/// One party's consent: its BIP-340 signature over every proof's secret, in the token's
/// order (NUT-11 `SIG_INPUTS`), hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CashuConsent {
    /// Who signed.
    pub by: PublicKey,
    /// One signature per proof.
    pub signatures: Vec<String>,
}

fn seed(keys: &Keys) -> [u8; 64] {
    let mut h = sha2::Sha512::new();
    h.update(b"agigit cashu wallet seed v1");
    h.update(keys.secret_key().as_secret_bytes());
    h.finalize().into()
}

/// A Nostr key (x-only) as the compressed key Cashu locks to: the even-y point, which BIP-340
/// signatures by the key's owner verify against.
fn cashu_key(key: &PublicKey) -> Result<CashuKey, CashuError> {
    let mut bytes = [0u8; 33];
    bytes[0] = 2;
    bytes[1..].copy_from_slice(&key.to_bytes());
    // Every x-only Nostr key is a point with an even y; this fails only for one that is not.
    CashuKey::from_slice(&bytes).map_err(|_| CashuError::NotAsAgreed("a key that is no point"))
}

fn conditions(escrow: &Escrow) -> Result<SpendingConditions, CashuError> {
    let mut others = vec![cashu_key(&escrow.payer)?];
    if let Some(a) = &escrow.arbiter {
        others.push(cashu_key(a)?);
    }
    Ok(SpendingConditions::new_p2pk(
        cashu_key(&escrow.payee)?,
        Some(Conditions {
            locktime: Some(escrow.refund_at),
            pubkeys: Some(others),
            refund_keys: Some(vec![cashu_key(&escrow.payer)?]),
            num_sigs: Some(2),
            sig_flag: SigFlag::SigInputs,
            num_sigs_refund: None,
        }),
    ))
}

impl CashuWallet {
    /// Opens (or creates) the wallet for `keys` on the mint at `mint_url`, its proofs in
    /// `dir/wallet.redb` (the directory created owner-only).
    ///
    /// # Errors
    /// [`CashuError::Store`] when the file cannot be opened; [`CashuError::Mint`] for a URL
    /// that is not one.
    pub fn open(mint_url: &str, dir: &Path, keys: Keys) -> Result<Self, CashuError> {
        let store_err = |e: &dyn std::fmt::Display| CashuError::Store {
            path: dir.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| store_err(&e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| store_err(&e))?;
        }
        let path = dir.join("wallet.redb");
        let store = cdk_redb::WalletRedbDatabase::new(&path).map_err(|e| store_err(&e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| store_err(&e))?;
        }
        let wallet = Wallet::new(
            mint_url,
            CurrencyUnit::Sat,
            Arc::new(store),
            seed(&keys),
            None,
        )
        .map_err(|e| CashuError::Mint {
            mint: mint_url.to_owned(),
            message: e.to_string(),
        })?;
        Ok(Self {
            wallet,
            keys,
            mint: mint_url.to_owned(),
        })
    }

    /// The mint's URL.
    pub fn mint_url(&self) -> &str {
        &self.mint
    }

    fn mint_err(&self, e: impl std::fmt::Display) -> CashuError {
        let message = e.to_string();
        if message.contains("spent") || message.contains("Spent") {
            return CashuError::Spent;
        }
        CashuError::Mint {
            mint: self.mint.clone(),
            message,
        }
    }

    /// Asks the mint for `amount` sats and waits (at most [`TOP_UP_WAIT`]) for its quote to be
    /// paid, then mints. A testing mint (cdk's fake Lightning backend) pays its own quotes; a
    /// real one waits for its invoice, which [`CashuError::Unpaid`] names.
    ///
    /// # Errors
    /// [`CashuError::Mint`], or [`CashuError::Unpaid`] with the invoice to pay.
    pub async fn top_up(&self, amount: Amount) -> Result<Amount, CashuError> {
        let quote = self
            .wallet
            .mint_quote(PaymentMethod::BOLT11, Some(amount.into()), None, None)
            .await
            .map_err(|e| self.mint_err(e))?;
        let deadline = std::time::Instant::now() + TOP_UP_WAIT;
        loop {
            let status = self
                .wallet
                .check_mint_quote_status(&quote.id)
                .await
                .map_err(|e| self.mint_err(e))?;
            if status.state == cdk::nuts::MintQuoteState::Paid {
                break;
            }
            if std::time::Instant::now() >= deadline {
                return Err(CashuError::Unpaid {
                    quote: quote.id,
                    request: quote.request,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let proofs = self
            .wallet
            .mint(&quote.id, SplitTarget::default(), None)
            .await
            .map_err(|e| self.mint_err(e))?;
        amount_of(&proofs)
    }

    /// Sends `amount` as a plain token (`cashuB…`), spendable by whoever holds it.
    ///
    /// # Errors
    /// [`CashuError::Insufficient`] or [`CashuError::Mint`].
    pub async fn send(&self, amount: Amount) -> Result<String, CashuError> {
        self.send_with(amount, None).await
    }

    async fn send_with(
        &self,
        amount: Amount,
        conditions: Option<SpendingConditions>,
    ) -> Result<String, CashuError> {
        let have = self.balance_now().await?;
        if have < amount {
            return Err(CashuError::Insufficient { have, need: amount });
        }
        let opts = SendOptions {
            conditions,
            include_fee: true,
            ..SendOptions::default()
        };
        let prepared = self
            .wallet
            .prepare_send(amount.into(), opts)
            .await
            .map_err(|e| self.mint_err(e))?;
        let token = prepared.confirm(None).await.map_err(|e| self.mint_err(e))?;
        Ok(token.to_string())
    }

    /// Receives a plain token into the wallet (swapping it at the mint, so the sender can no
    /// longer spend it). Returns what was received.
    ///
    /// # Errors
    /// [`CashuError::Token`] for one that does not parse or is from another mint;
    /// [`CashuError::Spent`]; [`CashuError::Mint`].
    pub async fn receive(&self, token: &str) -> Result<Amount, CashuError> {
        let parsed = self.parse(token)?;
        let proofs = self.proofs_of(&parsed).await?;
        self.redeem(proofs).await
    }

    async fn balance_now(&self) -> Result<Amount, CashuError> {
        let total = self
            .wallet
            .total_balance()
            .await
            .map_err(|e| self.mint_err(e))?;
        Ok(u64::from(total))
    }

    fn parse(&self, token: &str) -> Result<Token, CashuError> {
        let parsed = Token::from_str(token).map_err(|e| CashuError::Token(e.to_string()))?;
        let mint = parsed
            .mint_url()
            .map_err(|e| CashuError::Token(e.to_string()))?;
        if mint.to_string().trim_end_matches('/') != self.mint.trim_end_matches('/') {
            return Err(CashuError::Token(format!(
                "from the mint at {mint}, not this wallet's ({})",
                self.mint
            )));
        }
        if parsed.unit().is_some_and(|u| u != CurrencyUnit::Sat) {
            return Err(CashuError::Token("not in sat".to_owned()));
        }
        Ok(parsed)
    }

    async fn proofs_of(&self, token: &Token) -> Result<Proofs, CashuError> {
        self.proofs_at_most(token, MAX_PROOFS).await
    }

    async fn proofs_at_most(&self, token: &Token, most: usize) -> Result<Proofs, CashuError> {
        let keysets: Vec<KeySetInfo> = self
            .wallet
            .keysets(cdk::wallet::types::KeysetLoadPolicy::CacheThenNetwork)
            .await
            .map_err(|e| self.mint_err(e))?
            .into_iter()
            .map(|k| KeySetInfo {
                id: k.id,
                unit: k.unit,
                active: k.active.unwrap_or(true),
                input_fee_ppk: k.input_fee_ppk,
                final_expiry: k.final_expiry,
            })
            .collect();
        let proofs = token
            .proofs(&keysets)
            .map_err(|e| CashuError::Token(e.to_string()))?;
        if proofs.is_empty() || proofs.len() > most {
            return Err(CashuError::Token(format!(
                "{} proofs; a token here holds 1 to {most}",
                proofs.len()
            )));
        }
        Ok(proofs)
    }

    /// Locks one escrow per entry of `escrows` — the periods of a storage order, say: each its
    /// own amount and refund time, all from this wallet's owner to one payee — as one token.
    /// [`part`](Self::part) takes one escrow's proofs back out of it, to verify, consent to,
    /// claim or refund on its own.
    ///
    /// # Errors
    /// [`CashuError::NotAParty`] unless the owner pays every escrow;
    /// [`CashuError::NotAsAgreed`] for none, two with one refund time (their proofs could not
    /// be told apart), or more proofs than [`MAX_SCHEDULE_PROOFS`]; [`CashuError::Partly`]
    /// when the mint failed after some escrows were locked; as [`Ledger::lock`].
    pub async fn lock_schedule(&self, escrows: &[Escrow]) -> Result<CashuLock, CashuError> {
        let owner = self.keys.public_key();
        if escrows.iter().any(|e| e.payer != owner) {
            return Err(CashuError::NotAParty { key: owner });
        }
        let times: std::collections::BTreeSet<Time> = escrows.iter().map(|e| e.refund_at).collect();
        if escrows.is_empty() || times.len() != escrows.len() {
            return Err(CashuError::NotAsAgreed(
                "a schedule of escrows, each with its own refund time",
            ));
        }
        let mut all = Proofs::new();
        for escrow in escrows {
            let locked = async {
                let token = self
                    .send_with(escrow.amount, Some(conditions(escrow)?))
                    .await?;
                self.proofs_of(&self.parse(&token)?).await
            }
            .await;
            match locked {
                Ok(proofs) => all.extend(proofs),
                Err(e) if all.is_empty() => return Err(e),
                Err(e) => {
                    return Err(CashuError::Partly {
                        token: self.token_of(all)?.token,
                        message: e.to_string(),
                    });
                }
            }
        }
        if all.len() > MAX_SCHEDULE_PROOFS {
            return Err(CashuError::Partly {
                token: self.token_of(all)?.token,
                message: format!("more than {MAX_SCHEDULE_PROOFS} proofs in one token"),
            });
        }
        self.token_of(all)
    }

    /// The escrows of `locked` (a [`lock_schedule`](Self::lock_schedule) token, or a plain
    /// lock), each as a token of its own: its proofs grouped by refund time, earliest first,
    /// in their order within the token.
    ///
    /// # Errors
    /// [`CashuError::NotAsAgreed`] for a proof without P2PK conditions and a locktime; as
    /// [`Ledger::verify`]'s parsing.
    pub async fn parts(&self, locked: &CashuLock) -> Result<Vec<(Time, CashuLock)>, CashuError> {
        let token = self.parse(&locked.token)?;
        let mut groups: std::collections::BTreeMap<Time, Proofs> =
            std::collections::BTreeMap::new();
        for p in self.proofs_at_most(&token, MAX_SCHEDULE_PROOFS).await? {
            let Ok(SpendingConditions::P2PKConditions {
                conditions:
                    Some(Conditions {
                        locktime: Some(at), ..
                    }),
                ..
            }) = SpendingConditions::try_from(&p.secret)
            else {
                return Err(CashuError::NotAsAgreed(
                    "a proof without P2PK conditions and a locktime",
                ));
            };
            groups.entry(at).or_default().push(p);
        }
        groups
            .into_iter()
            .map(|(at, proofs)| Ok((at, self.token_of(proofs)?)))
            .collect()
    }

    /// The escrow of `locked` that refunds at `refund_at` (see [`parts`](Self::parts)).
    ///
    /// # Errors
    /// [`CashuError::NotAsAgreed`] when no proof has that refund time; as
    /// [`parts`](Self::parts).
    pub async fn part(&self, locked: &CashuLock, refund_at: Time) -> Result<CashuLock, CashuError> {
        self.parts(locked)
            .await?
            .into_iter()
            .find(|(at, _)| *at == refund_at)
            .map(|(_, part)| part)
            .ok_or(CashuError::NotAsAgreed("no escrow with that refund time"))
    }

    /// A NUT-18 payment request (`creqA…`) for `amount` sats at this wallet's mint, single
    /// use: what a server answering `402 Payment Required` sends in `X-Cashu` (NUT-24).
    ///
    /// # Errors
    /// [`CashuError::Token`] when the wallet's mint URL is not one.
    pub fn payment_request(&self, amount: Amount, description: &str) -> Result<String, CashuError> {
        let mint = cdk::mint_url::MintUrl::from_str(&self.mint)
            .map_err(|e| CashuError::Token(e.to_string()))?;
        Ok(cdk::nuts::PaymentRequest::builder()
            .amount(amount)
            .unit(CurrencyUnit::Sat)
            .single_use(true)
            .add_mint(mint)
            .description(description)
            .build()
            .to_string())
    }

    /// Takes a payment: a plain token of this wallet's mint worth at least `at_least` sats,
    /// swapped into this wallet at the mint (so that it cannot be spent again). The token is
    /// checked before the swap: a short payment, or locked proofs, are refused and not taken.
    /// Returns what was received.
    ///
    /// # Errors
    /// [`CashuError::NotAsAgreed`] for less than asked or locked proofs; as
    /// [`receive`](Self::receive).
    pub async fn accept(&self, token: &str, at_least: Amount) -> Result<Amount, CashuError> {
        let parsed = self.parse(token)?;
        let proofs = self.proofs_of(&parsed).await?;
        if proofs
            .iter()
            .any(|p| SpendingConditions::try_from(&p.secret).is_ok())
        {
            return Err(CashuError::NotAsAgreed("locked proofs, not a payment"));
        }
        if amount_of(&proofs)? < at_least {
            return Err(CashuError::NotAsAgreed("less than the price asked"));
        }
        self.redeem(proofs).await
    }

    /// Pays a NUT-18 payment request (`creqA…`) from this wallet: a plain token for its
    /// amount, when the request is in sats, accepts this wallet's mint (or names none) and
    /// asks at most `most`. Returns what was paid and the token (`cashuB…`).
    ///
    /// # Errors
    /// [`CashuError::Token`] for a request that does not parse, is in another unit or names
    /// no amount; [`CashuError::NotAsAgreed`] for one above `most` or at other mints only; as
    /// [`send`](Self::send).
    pub async fn pay_request(
        &self,
        request: &str,
        most: Amount,
    ) -> Result<(Amount, String), CashuError> {
        let parsed = cdk::nuts::PaymentRequest::from_str(request.trim())
            .map_err(|e| CashuError::Token(format!("a payment request: {e}")))?;
        if parsed
            .unit
            .as_ref()
            .is_some_and(|u| *u != CurrencyUnit::Sat)
        {
            return Err(CashuError::Token("a payment request not in sat".to_owned()));
        }
        let amount = u64::from(
            parsed
                .amount
                .ok_or_else(|| CashuError::Token("a payment request for no amount".to_owned()))?,
        );
        let ours = parsed.mints.is_empty()
            || parsed.mint_preferred == Some(true)
            || parsed
                .mints
                .iter()
                .any(|m| m.to_string().trim_end_matches('/') == self.mint.trim_end_matches('/'));
        if !ours {
            return Err(CashuError::NotAsAgreed("a payment at another mint"));
        }
        if amount > most {
            return Err(CashuError::NotAsAgreed("a price above what may be paid"));
        }
        let token = self.send_with(amount, None).await?;
        Ok((amount, token))
    }

    /// `proofs` as one token of this wallet's mint.
    fn token_of(&self, proofs: Proofs) -> Result<CashuLock, CashuError> {
        let mint = cdk::mint_url::MintUrl::from_str(&self.mint)
            .map_err(|e| CashuError::Token(e.to_string()))?;
        Ok(CashuLock {
            token: Token::new(mint, proofs, None, CurrencyUnit::Sat).to_string(),
        })
    }

    async fn redeem(&self, proofs: Proofs) -> Result<Amount, CashuError> {
        let received = self
            .wallet
            .receive_proofs(proofs, ReceiveOptions::default(), None, None)
            .await
            .map_err(|e| match e {
                cdk::Error::TokenAlreadySpent => CashuError::Spent,
                e => self.mint_err(e),
            })?;
        Ok(u64::from(received))
    }

    fn secret(&self) -> Result<CashuSecret, CashuError> {
        CashuSecret::from_slice(&self.keys.secret_key().secret_bytes())
            .map_err(|e| CashuError::Token(e.to_string()))
    }

    /// Signs every proof's secret with the owner's key.
    fn signatures(&self, proofs: &[Proof]) -> Result<Vec<String>, CashuError> {
        let secret = self.secret()?;
        proofs
            .iter()
            .map(|p| {
                secret
                    .sign(p.secret.as_bytes())
                    .map(|s| s.to_string())
                    .map_err(|e| CashuError::Token(e.to_string()))
            })
            .collect()
    }

    /// Checks a token against an escrow's conditions, offline: every proof P2PK-locked exactly
    /// as `escrow` says, the amounts summing to `escrow.amount`.
    fn check_conditions(proofs: &[Proof], escrow: &Escrow) -> Result<(), CashuError> {
        let expected = conditions(escrow)?;
        let mut sum: Amount = 0;
        for p in proofs {
            let found = SpendingConditions::try_from(&p.secret)
                .map_err(|_| CashuError::NotAsAgreed("a proof without P2PK conditions"))?;
            if found != expected {
                return Err(CashuError::NotAsAgreed(
                    "a proof locked to other keys, signatures or locktime",
                ));
            }
            sum = sum
                .checked_add(u64::from(p.amount))
                .ok_or(CashuError::NotAsAgreed("amounts that overflow"))?;
        }
        if sum != escrow.amount {
            return Err(CashuError::NotAsAgreed("another amount"));
        }
        Ok(())
    }

    async fn locked_proofs(&self, locked: &CashuLock) -> Result<Proofs, CashuError> {
        let token = self.parse(&locked.token)?;
        self.proofs_of(&token).await
    }

    /// The parties' keys of a locked token's proofs (payee, payer, arbiter), read from the
    /// first proof (every proof is checked to carry the same conditions).
    fn parties(proofs: &[Proof]) -> Result<Escrow, CashuError> {
        let first = proofs.first().ok_or(CashuError::NotAsAgreed("no proofs"))?;
        let Ok(SpendingConditions::P2PKConditions {
            data,
            conditions: Some(c),
        }) = SpendingConditions::try_from(&first.secret)
        else {
            return Err(CashuError::NotAsAgreed("a proof without P2PK conditions"));
        };
        let key = |k: &CashuKey| {
            PublicKey::from_slice(&k.to_bytes()[1..])
                .map_err(|_| CashuError::NotAsAgreed("a key that is no Nostr key"))
        };
        let others = c.pubkeys.unwrap_or_default();
        let payer = others
            .first()
            .ok_or(CashuError::NotAsAgreed("no payer key"))?;
        let escrow = Escrow {
            amount: proofs.iter().map(|p| u64::from(p.amount)).sum(),
            payer: key(payer)?,
            payee: key(&data)?,
            arbiter: others.get(1).map(key).transpose()?,
            refund_at: c.locktime.ok_or(CashuError::NotAsAgreed("no locktime"))?,
        };
        Self::check_conditions(proofs, &escrow)?;
        Ok(escrow)
    }

    async fn claim_now(
        &self,
        locked: &CashuLock,
        consents: &[CashuConsent],
    ) -> Result<Amount, CashuError> {
        let mut proofs = self.locked_proofs(locked).await?;
        let escrow = Self::parties(&proofs)?;
        let owner = self.keys.public_key();
        if !escrow.is_party(&owner) {
            return Err(CashuError::NotAParty { key: owner });
        }
        // One other party's consent, every signature checked before the mint sees it.
        let other = consents
            .iter()
            .find(|c| {
                c.by != owner
                    && escrow.is_party(&c.by)
                    && c.signatures.len() == proofs.len()
                    && cashu_key(&c.by).is_ok_and(|key| {
                        proofs.iter().zip(&c.signatures).all(|(p, s)| {
                            s.parse()
                                .is_ok_and(|sig| key.verify(p.secret.as_bytes(), &sig).is_ok())
                        })
                    })
            })
            .ok_or(CashuError::Consents)?;
        let own = self.signatures(&proofs)?;
        for ((p, theirs), mine) in proofs.iter_mut().zip(&other.signatures).zip(own) {
            p.witness = Some(cdk::nuts::Witness::P2PKWitness(cdk::nuts::P2PKWitness {
                signatures: vec![theirs.clone(), mine],
            }));
        }
        self.redeem(proofs).await
    }

    async fn refund_now(&self, locked: &CashuLock) -> Result<Amount, CashuError> {
        let mut proofs = self.locked_proofs(locked).await?;
        let escrow = Self::parties(&proofs)?;
        let owner = self.keys.public_key();
        if owner != escrow.payer {
            return Err(CashuError::NotAParty { key: owner });
        }
        let signatures = self.signatures(&proofs)?;
        for (p, s) in proofs.iter_mut().zip(signatures) {
            p.witness = Some(cdk::nuts::Witness::P2PKWitness(cdk::nuts::P2PKWitness {
                signatures: vec![s],
            }));
        }
        match self.redeem(proofs).await {
            Err(CashuError::Mint { message, .. })
                if message.contains("condition") || message.contains("Condition") =>
            {
                Err(CashuError::NotYetRefundable {
                    refund_at: escrow.refund_at,
                })
            }
            other => other,
        }
    }

    async fn verify_now(&self, locked: &CashuLock, escrow: &Escrow) -> Result<(), CashuError> {
        let token = self.parse(&locked.token)?;
        let proofs = self.proofs_of(&token).await?;
        Self::check_conditions(&proofs, escrow)?;
        // The mint signed every proof (NUT-12): a payer cannot make up proofs the mint would
        // refuse, and a fabricated proof is "unspent" only because the mint never saw it.
        self.wallet.verify_token_dleq(&token).await.map_err(|_| {
            CashuError::NotAsAgreed("a proof the mint did not sign (no valid DLEQ proof)")
        })?;
        let states = self
            .wallet
            .check_proofs_spent(proofs)
            .await
            .map_err(|e| self.mint_err(e))?;
        if states.iter().any(|s| s.state != State::Unspent) {
            return Err(CashuError::Spent);
        }
        Ok(())
    }
}

fn amount_of(proofs: &[Proof]) -> Result<Amount, CashuError> {
    proofs.iter().try_fold(0u64, |sum, p| {
        sum.checked_add(u64::from(p.amount))
            .ok_or(CashuError::NotAsAgreed("amounts that overflow"))
    })
}

impl Ledger for CashuWallet {
    type Locked = CashuLock;
    type Consent = CashuConsent;
    type Error = CashuError;

    fn owner(&self) -> PublicKey {
        self.keys.public_key()
    }

    async fn balance(&self) -> Result<Amount, CashuError> {
        self.balance_now().await
    }

    async fn lock(&self, escrow: &Escrow) -> Result<CashuLock, CashuError> {
        let owner = self.keys.public_key();
        if escrow.payer != owner {
            return Err(CashuError::NotAParty { key: owner });
        }
        let token = self
            .send_with(escrow.amount, Some(conditions(escrow)?))
            .await?;
        Ok(CashuLock { token })
    }

    async fn verify(&self, locked: &CashuLock, escrow: &Escrow) -> Result<(), CashuError> {
        self.verify_now(locked, escrow).await
    }

    async fn consent(&self, locked: &CashuLock) -> Result<CashuConsent, CashuError> {
        let proofs = self.locked_proofs(locked).await?;
        let escrow = Self::parties(&proofs)?;
        let owner = self.keys.public_key();
        if !escrow.is_party(&owner) {
            return Err(CashuError::NotAParty { key: owner });
        }
        Ok(CashuConsent {
            by: owner,
            signatures: self.signatures(&proofs)?,
        })
    }

    async fn claim(
        &self,
        locked: &CashuLock,
        consents: &[CashuConsent],
    ) -> Result<Amount, CashuError> {
        self.claim_now(locked, consents).await
    }

    async fn refund(&self, locked: &CashuLock) -> Result<Amount, CashuError> {
        self.refund_now(locked).await
    }
}
