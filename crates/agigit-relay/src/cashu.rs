//! Paid serving in Cashu ecash (the `cashu` feature): a [`PaymentGate`] that prices downloads
//! and uploads per MiB ([`PaymentConfig`]) and takes a plain token in `X-Cashu` (NUT-24) into
//! the relay's wallet at its mint before anything is served. A request without one, or with
//! one that is short, spent or from another mint, is answered `402 Payment Required` with a
//! NUT-18 payment request for the price in `X-Cashu`.
//!
//! A payment is taken before the bytes are sent: a client trusts the relay with one request's
//! price at a time (agigit pays per shard, within a budget the user sets).

use std::path::Path;

use agigit_market_cashu::CashuWallet;
use nostr::prelude::Keys;

use crate::config::PaymentConfig;
use crate::payment::{PaidAction, PaidRequest, PaymentCheck, PaymentGate, PaymentRequired};
use crate::server::ServeError;

/// The longest `X-Cashu` value read: a token of a few proofs is well under it.
const MAX_TOKEN: usize = 16 << 10;

/// Prices requests per MiB and takes Cashu tokens for them.
#[derive(Debug)]
pub struct CashuGate {
    wallet: CashuWallet,
    prices: PaymentConfig,
}

impl CashuGate {
    /// A gate taking tokens of `prices.mint` into the wallet of `keys` in `dir`.
    ///
    /// # Errors
    /// [`ServeError::Payment`] when the wallet cannot be opened.
    pub fn open(prices: &PaymentConfig, dir: &Path, keys: Keys) -> Result<Self, ServeError> {
        let wallet = CashuWallet::open(&prices.mint, dir, keys)
            .map_err(|e| ServeError::Payment(e.to_string()))?;
        Ok(Self {
            wallet,
            prices: prices.clone(),
        })
    }

    /// The wallet the payments go to.
    pub fn wallet(&self) -> &CashuWallet {
        &self.wallet
    }

    /// What `request` costs, in sats.
    pub fn price(&self, request: &PaidRequest) -> u64 {
        let per_mib = match request.action {
            PaidAction::Download => self.prices.download_sats_per_mib,
            PaidAction::Upload => self.prices.upload_sats_per_mib,
            _ => 0,
        };
        PaymentConfig::price(request.size.unwrap_or(0), per_mib)
    }
}

impl PaymentGate for CashuGate {
    fn check<'a>(&'a self, request: &'a PaidRequest) -> PaymentCheck<'a> {
        Box::pin(async move {
            let price = self.price(request);
            if price == 0 {
                return Ok(());
            }
            let offered = request
                .headers
                .get("x-cashu")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|t| t.starts_with("cashu") && t.len() <= MAX_TOKEN);
            let reason = match offered {
                Some(token) => match self.wallet.accept(token, price).await {
                    Ok(_) => return Ok(()),
                    Err(e) => format!("the token was not taken: {e}; pay {price} sats"),
                },
                None => format!("{price} sats, in Cashu at {}", self.prices.mint),
            };
            match self.wallet.payment_request(price, "agigit blob") {
                Ok(creq) => Err(PaymentRequired {
                    methods: vec![("Cashu".to_owned(), creq)],
                    reason,
                }),
                Err(e) => Err(PaymentRequired {
                    methods: Vec::new(),
                    reason: format!("{reason} (no payment request: {e})"),
                }),
            }
        })
    }
}
