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
    assert!(states.contains(&"closed: the relay is paid"));
    Ok(())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
