//! The market through the binary, on real relays and a real Cashu mint (cdk-mintd with its fake
//! Lightning backend), all on loopback: a user posts a pull order for a model to two relays; one
//! takes it, the user funds it from its wallet, the relay checks the funding at the mint and
//! delivers; the user clones the model from that relay (every shard checked by hash), confirms
//! and releases the payment; the relay claims it into its wallet. A second order is taken,
//! funded and abandoned: the user's funds come back from its last deadline, not before.

#![allow(clippy::expect_used, clippy::panic, reason = "test fixtures")]

use std::path::Path;
use std::time::Duration;

mod support;
use support::{Relays, agigit, json, model_on, ok};

#[path = "../../agigit-market-cashu/tests/support/mint.rs"]
mod mint;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// `agigit --json ARGS` as the user of `home`, in `cwd`.
fn run(home: &Path, cwd: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    json(&agigit(home, cwd, &all))
}

fn balance(home: &Path) -> u64 {
    run(home, home, &["wallet", "balance"])["balance"]
        .as_u64()
        .expect("a balance")
}

#[test]
fn a_paid_pull_and_an_abandoned_order_on_a_real_mint() -> TestResult {
    let Some(mint) = mint::start_mint("cli-market") else {
        return Ok(());
    };
    let root = mint.dir.join("market");
    let relays = Relays::start(&root, 2, |_| None)?;
    let urls = relays.urls();

    // The model, pushed by its owner to both relays.
    let (owner, model) = model_on(&root, &urls);
    std::fs::write(model.join("train.py"), "print('the model')\n")?;
    let weights: Vec<u8> = (0..400_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11).to_le_bytes()[0])
        .collect();
    std::fs::write(model.join("weights.bin"), &weights)?;
    let commit = json(&agigit(&owner, &model, &["commit", "-m", "v1", "--json"]));
    let commit = commit["commit"].as_str().ok_or("commit")?.to_owned();
    let pushed = json(&agigit(&owner, &model, &["push", "--json"]));
    let coordinate = pushed["repository"]
        .as_str()
        .ok_or("coordinate")?
        .to_owned();

    // Everyone's config: the two relays and the mint.
    let relay_lines: String = urls
        .iter()
        .map(|u| format!("[[relay]]\nurl = \"{u}\"\n"))
        .collect();
    let config = format!("[wallet]\nmint = \"{}\"\n\n{relay_lines}", mint.url);
    let buyer = root.join("buyer");
    std::fs::create_dir_all(&buyer)?;
    ok(&agigit(&buyer, &buyer, &["key", "generate"]));
    std::fs::write(buyer.join("config.toml"), &config)?;
    // Each relay's operator acts with the relay's own key (its identity in NIP-11).
    let mut operators = Vec::new();
    let mut relay_keys = Vec::new();
    for i in 0..2 {
        let home = root.join(format!("operator-{i}"));
        std::fs::create_dir_all(&home)?;
        let secret = std::fs::read_to_string(relays.data(i).join("relay.key"))?;
        ok(&agigit(&home, &home, &["key", "import", secret.trim()]));
        std::fs::write(home.join("config.toml"), &config)?;
        relay_keys.push(
            run(&home, &home, &["key", "show"])["hex"]
                .as_str()
                .ok_or("hex")?
                .to_owned(),
        );
        operators.push(home);
    }
    assert_eq!(
        run(&buyer, &buyer, &["wallet", "top-up", "2000"])["balance"],
        2000
    );

    // 1. The paid pull.
    let posted = run(
        &buyer,
        &buyer,
        &[
            "order",
            "pull",
            &coordinate,
            "--model",
            &commit,
            "--relay",
            &relay_keys[0],
            "--relay",
            &relay_keys[1],
            "--price",
            "300",
            "--tip",
            "20",
        ],
    );
    let id = posted["id"].as_str().ok_or("order id")?.to_owned();
    assert_eq!(posted["state"], "open");
    assert!(posted["accepted"].as_u64() >= Some(1));
    // Relay 1 may not deliver what relay 0 takes; nobody may deliver before funding.
    let took = run(&operators[0], &operators[0], &["order", "take", &id]);
    assert_eq!(took["state"], "taken, waiting for the buyer to fund it");
    let early = agigit(&operators[0], &operators[0], &["order", "deliver", &id]);
    assert_eq!(early.status.code(), Some(9), "delivering an unfunded order");
    let late_take = agigit(&operators[1], &operators[1], &["order", "take", &id]);
    assert!(!late_take.status.success());
    // The explorer's market page of the model lists the open order as the fold leaves it.
    let market_page = || -> Result<String, Box<dyn std::error::Error>> {
        let (_serve, port) = support::serve(&owner, &[&model])?;
        let (code, page) = support::http_get(port, "/r/model/market", "text/html")?;
        assert_eq!(code, 200, "{page}");
        Ok(page)
    };
    let page = market_page()?;
    assert!(page.contains(&format!(r#"data-order="{id}""#)), "{page}");
    assert!(
        page.contains("taken, waiting for the buyer to fund it"),
        "{page}"
    );
    assert!(page.contains("320 sats"), "{page}");
    assert!(page.contains(&relay_keys[0][..8]), "{page}");

    let funded = run(&buyer, &buyer, &["order", "fund", &id]);
    assert_eq!(funded["locked"], 320);
    assert_eq!(balance(&buyer), 1680);
    // The locked token is kept before it is published; funding twice is refused, not paid twice.
    assert!(buyer.join(format!("wallet/orders/{id}.token")).is_file());
    let twice = agigit(&buyer, &buyer, &["order", "fund", &id]);
    assert!(!twice.status.success());
    assert_eq!(balance(&buyer), 1680);
    let delivered = run(&operators[0], &operators[0], &["order", "deliver", &id]);
    assert_eq!(delivered["verified"], 320);

    // The buyer confirms only with the model here: first without it, then in a clone from
    // the relay that took the order.
    let nowhere = agigit(&buyer, &buyer, &["order", "confirm", &id]);
    assert!(!nowhere.status.success());
    ok(&agigit(
        &buyer,
        &buyer,
        &["clone", &coordinate, "clone", "--relay", &urls[0]],
    ));
    let clone = buyer.join("clone");
    assert_eq!(std::fs::read(clone.join("weights.bin"))?, weights);
    let confirmed = run(&buyer, &clone, &["order", "confirm", &id]);
    assert_eq!(confirmed["state"], "closed: the relay is paid");

    // The relay claims the payment into its wallet; only once, and only it.
    let stranger = agigit(&operators[1], &operators[1], &["order", "claim", &id]);
    assert!(!stranger.status.success());
    let claimed = run(&operators[0], &operators[0], &["order", "claim", &id]);
    assert_eq!(claimed["claimed"], 320);
    assert_eq!(balance(&operators[0]), 320);
    assert!(
        !agigit(&operators[0], &operators[0], &["order", "claim", &id])
            .status
            .success()
    );
    // Nor can the buyer take back what it paid.
    assert!(
        !agigit(&buyer, &buyer, &["order", "refund", &id])
            .status
            .success()
    );

    // 2. The abandoned order: taken, funded, never delivered. Short windows: the escrow's
    // refund time is the funding + 2 + 2 + 2 seconds.
    let posted = run(
        &buyer,
        &buyer,
        &[
            "order",
            "pull",
            &coordinate,
            "--model",
            &commit,
            "--relay",
            &relay_keys[1],
            "--price",
            "500",
            "--deliver-within",
            "2",
            "--confirm-within",
            "2",
            "--arbitrate-within",
            "2",
        ],
    );
    let id2 = posted["id"].as_str().ok_or("order id")?.to_owned();
    run(&operators[1], &operators[1], &["order", "take", &id2]);
    let funded = run(&buyer, &buyer, &["order", "fund", &id2]);
    let refund_at = funded["refund_at"].as_u64().ok_or("refund_at")?;
    assert_eq!(balance(&buyer), 1180);
    // Before the refund time the mint refuses the buyer alone.
    let early = agigit(&buyer, &buyer, &["order", "refund", &id2]);
    assert!(!early.status.success(), "refunded before the refund time");
    assert_eq!(balance(&buyer), 1180);
    // Past the delivery deadline the order is abandoned; past the refund time, the money is
    // the buyer's again.
    let wait = refund_at.saturating_sub(unix_now()) + 2;
    std::thread::sleep(Duration::from_secs(wait));
    let shown = run(&buyer, &buyer, &["order", "show", &id2]);
    assert_eq!(shown["state"], "closed: abandoned, the buyer is refunded");
    let refunded = run(&buyer, &buyer, &["order", "refund", &id2]);
    assert_eq!(refunded["refunded"], 500);
    assert_eq!(balance(&buyer), 1680);
    // The relay that abandoned it has nothing to claim.
    assert!(
        !agigit(&operators[1], &operators[1], &["order", "claim", &id2])
            .status
            .success()
    );

    // Both orders are in the buyer's list, with their states.
    let listed = run(&buyer, &buyer, &["order", "list"]);
    let states: Vec<&str> = listed["orders"]
        .as_array()
        .ok_or("orders")?
        .iter()
        .filter_map(|o| o["state"].as_str())
        .collect();
    assert_eq!(states.len(), 2, "{listed}");
    // Each order folded with its own actions (the list asks for both orders' in one query).
    assert!(states.contains(&"closed: the relay is paid"), "{listed}");
    assert!(
        states.contains(&"closed: abandoned, the buyer is refunded"),
        "{listed}"
    );
    // Closed, both: none open on the page.
    let page = market_page()?;
    assert!(
        page.contains("No open order.") && page.contains("2 closed orders"),
        "{page}"
    );
    Ok(())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Sleeps until unix time `at`.
fn sleep_until(at: u64) {
    let now = unix_now();
    if at > now {
        std::thread::sleep(Duration::from_secs(at - now));
    }
}

/// `order show` of `id` as `home` sees it, once its state is `state` (within 20 s).
fn wait_for_state(
    home: &Path,
    id: &str,
    state: &str,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let shown = run(home, home, &["order", "show", id]);
        if shown["state"] == state {
            return Ok(shown);
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("order {id} never became \"{state}\": {shown}").into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A storage order through the binary, on a relay and a real mint: the buyer orders what the
/// relay holds of its pushed model kept for three audit periods; the relay's operator checks
/// its copies and takes it; the buyer funds it (one escrow per period) and audits each period,
/// releasing the payment of each audit that passed; the relay process answers each challenge
/// itself from its blob store, and its operator claims what was released. For the third audit
/// the operator turns the relay's answering off (`[audits] answer = false`) to answer by hand,
/// and the relay loses a shard the challenge reaches: it cannot answer, the period fails, and
/// that period's price goes back to the buyer, not the relay.
#[test]
fn a_storage_order_pays_each_audited_period_and_not_the_one_a_lost_shard_fails() -> TestResult {
    const PRICE: u64 = 7;
    const PERIOD: u64 = 10;
    const ANSWER: u64 = 4;
    let Some(mint) = mint::start_mint("cli-storage") else {
        return Ok(());
    };
    let root = mint.dir.join("storage");
    // Embedded defaults: the relay answers its storage audits itself.
    let relay_config = mint.dir.join("storage-relay.toml");
    std::fs::write(&relay_config, "")?;
    let mut relays = Relays::start(&root, 1, |_| Some(relay_config.clone()))?;
    let urls = relays.urls();

    // The buyer owns the model and pushed it to the relay.
    let (buyer, model) = model_on(&root, &urls);
    std::fs::write(model.join("train.py"), "print('kept')\n")?;
    let weights: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 9).to_le_bytes()[0])
        .collect();
    std::fs::write(model.join("weights.bin"), &weights)?;
    ok(&agigit(&buyer, &model, &["commit", "-m", "v1"]));
    ok(&agigit(&buyer, &model, &["push"]));
    let config = format!(
        "[wallet]\nmint = \"{}\"\n\n[[relay]]\nurl = \"{}\"\n",
        mint.url, urls[0]
    );
    std::fs::write(buyer.join("config.toml"), &config)?;
    let operator = root.join("operator");
    std::fs::create_dir_all(&operator)?;
    let secret = std::fs::read_to_string(relays.data(0).join("relay.key"))?;
    ok(&agigit(
        &operator,
        &operator,
        &["key", "import", secret.trim()],
    ));
    std::fs::write(operator.join("config.toml"), &config)?;
    let server = run(&operator, &operator, &["key", "show"])["hex"]
        .as_str()
        .ok_or("hex")?
        .to_owned();
    assert_eq!(
        run(&buyer, &buyer, &["wallet", "top-up", "100"])["balance"],
        100
    );

    // The order names every blob the relay holds of the model (each pack's manifest and
    // shards), with its audit root.
    let posted = run(
        &buyer,
        &model,
        &[
            "order",
            "storage",
            "--server",
            &server,
            "--store",
            &urls[0],
            "--price",
            &PRICE.to_string(),
            "--periods",
            "3",
            "--period",
            &PERIOD.to_string(),
            "--answer-within",
            &ANSWER.to_string(),
            "--challenges",
            "8",
        ],
    );
    let id = posted["id"].as_str().ok_or("order id")?.to_owned();
    let blobs = posted["blobs"].as_u64().ok_or("blobs")?;
    assert!(blobs >= 8, "{blobs} blobs: manifests and their shards");
    assert_eq!(posted["state"], "open");

    // The operator takes it only with its copies checked.
    let unchecked = agigit(&operator, &operator, &["order", "take", &id]);
    assert!(!unchecked.status.success(), "taken without --store");
    let took = run(
        &operator,
        &operator,
        &["order", "take", &id, "--store", &urls[0]],
    );
    assert_eq!(took["state"], "taken, waiting for the buyer to fund it");
    assert!(took["checked_bytes"].as_u64() > Some(0));

    let funded = run(&buyer, &buyer, &["order", "fund", &id]);
    assert_eq!(funded["locked"], 3 * PRICE);
    assert_eq!(balance(&buyer), 100 - 3 * PRICE);
    let since = funded["funded_at"].as_u64().ok_or("funded_at")?;

    // Periods 1 and 2: challenged, answered by the relay process from its blobs, released,
    // claimed.
    for period in 0..2u64 {
        sleep_until(since + period * PERIOD + 1);
        let challenged = run(&buyer, &buyer, &["order", "challenge", &id]);
        assert_eq!(challenged["current_period"], period + 1);
        assert_eq!(
            challenged["challenged"].as_array().map(Vec::len),
            Some(8),
            "an audit of 8 positions reaches 8 distinct blobs"
        );
        // Only the buyer audits, only the taker answers.
        assert!(
            !agigit(&operator, &operator, &["order", "challenge", &id])
                .status
                .success()
        );
        let passed = format!("running, period {}: audit passed", period + 1);
        let shown = wait_for_state(&buyer, &id, &passed)?;
        assert_eq!(shown["state"], passed);
        // Answered already: the operator has nothing left to answer.
        assert!(
            !agigit(
                &operator,
                &operator,
                &["order", "answer", &id, "--store", &urls[0]]
            )
            .status
            .success()
        );
        let released = run(&buyer, &buyer, &["order", "confirm", &id]);
        assert_eq!(released["released"], PRICE);
        let claimed = run(&operator, &operator, &["order", "claim", &id]);
        assert_eq!(claimed["claimed"], PRICE);
        assert_eq!(balance(&operator), (period + 1) * PRICE);
    }

    // The third audit: the relay has lost a blob it reaches. (A lost blob is reached by an
    // audit of 8 among these with probability 8 / blobs; the test deletes one this challenge
    // names, before the relay answers, so that the run is the same every time.)
    std::fs::write(&relay_config, "[audits]\nanswer = false\n")?;
    relays.restart(0)?;
    sleep_until(since + 2 * PERIOD + 1);
    let challenged = run(&buyer, &buyer, &["order", "challenge", &id]);
    assert_eq!(challenged["current_period"], 3);
    let hex = challenged["challenged"][0]
        .as_str()
        .ok_or("a challenged blob")?
        .to_owned();
    std::fs::remove_file(relays.data(0).join("blobs").join(&hex[..2]).join(&hex))?;
    let failed = agigit(
        &operator,
        &operator,
        &["order", "answer", &id, "--store", &urls[0]],
    );
    assert!(!failed.status.success(), "answered without the shard");
    // Nothing to release: the buyer's confirm is refused, the relay's claim gets nothing new.
    assert!(
        !agigit(&buyer, &buyer, &["order", "confirm", &id])
            .status
            .success()
    );
    let at = challenged["next_deadline"]["at"]
        .as_u64()
        .ok_or("answer deadline")?;
    sleep_until(at + 1);
    let shown = run(&buyer, &buyer, &["order", "show", &id]);
    assert_eq!(
        shown["state"],
        "closed: the server failed period 3's audit; it and every later period go back to the buyer"
    );
    let settled = shown["settled"].as_array().ok_or("settled")?;
    assert_eq!(settled.len(), 3, "{shown}");
    assert_eq!(settled[2], "failed: back to the buyer");
    let claimed = run(&operator, &operator, &["order", "claim", &id]);
    assert_eq!(claimed["claimed"], 0);
    assert_eq!(balance(&operator), 2 * PRICE);

    // The third period's escrow is the buyer's from the period's end (the mint's clock).
    sleep_until(since + 3 * PERIOD + 1);
    let refunded = run(&buyer, &buyer, &["order", "refund", &id]);
    assert_eq!(refunded["refunded"], PRICE, "{refunded}");
    assert_eq!(balance(&buyer), 100 - 2 * PRICE);
    // Once.
    let again = run(&buyer, &buyer, &["order", "refund", &id]);
    assert_eq!(again["refunded"], 0);
    assert_eq!(balance(&buyer), 100 - 2 * PRICE);
    Ok(())
}

/// Paid serving through the binary: a relay that charges for downloads (`[payment]`, BUD-07
/// with Cashu) answers `402` with a payment request; a reader without a budget is refused, one
/// with too small a budget pays no more than it and fails, and one with enough clones the
/// model, paying shard by shard from its wallet; the relay's wallet holds exactly what was
/// paid.
#[test]
fn a_relay_that_charges_for_downloads_is_paid_shard_by_shard_within_the_budget() -> TestResult {
    use agigit_market::ledger::Ledger as _;
    let Some(mint) = mint::start_mint("cli-paid") else {
        return Ok(());
    };
    let relay_config = mint.dir.join("paid-relay.toml");
    std::fs::write(
        &relay_config,
        format!(
            "[payment]\nmint = \"{}\"\ndownload_sats_per_mib = 16\n",
            mint.url
        ),
    )?;
    let root = mint.dir.join("paid");
    let mut relays = Relays::start(&root, 1, |_| Some(relay_config.clone()))?;
    let urls = relays.urls();
    let (owner, model) = model_on(&root, &urls);
    let weights: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7).to_le_bytes()[0])
        .collect();
    std::fs::write(model.join("weights.bin"), &weights)?;
    ok(&agigit(&owner, &model, &["commit", "-m", "v1"]));
    let pushed = json(&agigit(&owner, &model, &["push", "--json"]));
    let coordinate = pushed["repository"]
        .as_str()
        .ok_or("coordinate")?
        .to_owned();

    let reader = root.join("reader");
    std::fs::create_dir_all(&reader)?;
    ok(&agigit(&reader, &reader, &["key", "generate"]));
    let with_budget = |budget: u64| -> std::io::Result<()> {
        std::fs::write(
            reader.join("config.toml"),
            format!("[wallet]\nmint = \"{}\"\nbudget = {budget}\n", mint.url),
        )
    };
    with_budget(0)?;
    assert_eq!(
        run(&reader, &reader, &["wallet", "top-up", "500"])["balance"],
        500
    );
    let clone = |name: &str| {
        agigit(
            &reader,
            &reader,
            &["clone", &coordinate, name, "--relay", &urls[0]],
        )
    };

    // No budget: nothing is paid, and the relay serves nothing.
    let refused = clone("free");
    assert!(
        !refused.status.success(),
        "cloned from a paid relay without paying"
    );
    assert_eq!(balance(&reader), 500);
    // A budget of 1 sat: at most that is paid, and the clone fails.
    with_budget(1)?;
    let short = clone("short");
    assert!(!short.status.success(), "cloned within 1 sat");
    let after_short = balance(&reader);
    assert!((499..=500).contains(&after_short), "{after_short}");
    // Enough: the model arrives, every shard paid for on its own.
    with_budget(200)?;
    let paid = clone("paid");
    ok(&paid);
    assert_eq!(
        std::fs::read(reader.join("paid").join("weights.bin"))?,
        weights
    );
    let spent = after_short - balance(&reader);
    assert!(spent > 1 && spent <= 200, "spent {spent}");
    let receipts = String::from_utf8_lossy(&paid.stderr)
        .lines()
        .filter(|l| l.starts_with("paid "))
        .count();
    assert!(receipts >= 2, "one payment per shard, not one for all");

    // The relay's wallet holds what the reader paid (its 1-sat try included).
    relays.stop(0);
    let secret = std::fs::read_to_string(relays.data(0).join("relay.key"))?;
    let keys = agigit::event::nostr::prelude::Keys::parse(secret.trim())?;
    let wallet =
        agigit_market_cashu::CashuWallet::open(&mint.url, &relays.data(0).join("wallet"), keys)?;
    let rt = tokio::runtime::Runtime::new()?;
    assert_eq!(rt.block_on(wallet.balance())?, 500 - balance(&reader));
    Ok(())
}
