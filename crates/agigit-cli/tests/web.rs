//! The web explorer in a real browser: `agigit serve` over a repository pushed to relays and a
//! fork of it, and `agigit-relay --web` with its events in SQLite and in PostgreSQL, driven by
//! Debian's Chromium (headless) through chromedriver (WebDriver).
//!
//! Needs `chromium` and `chromedriver` (Debian's `chromium` and `chromium-driver`, which
//! `.ci/run` installs); without them the test is skipped with a message, unless
//! `AGIGIT_REQUIRE_BROWSER=1` (set by CI) makes that a failure. Screenshots of every page, on a
//! wide and a narrow window, are saved under `target/web-screenshots/` (ignored by git).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "../../agigit-relay/tests/support/postgres.rs"]
mod postgres;
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource as _, KeyAction, KeyActions};
use fantoccini::{Client, ClientBuilder, Locator};
use support::{
    Killed, Relays, agigit, blob_files, free_port, http_get, json, model_on, ok, wait_for_port,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// chromedriver and chromium, or why the test cannot run.
fn browser() -> Result<(PathBuf, PathBuf), String> {
    let find = |names: &[&str]| -> Option<PathBuf> {
        names.iter().map(PathBuf::from).find(|p| p.is_file())
    };
    let driver = find(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"])
        .ok_or("chromedriver is not installed (Debian: apt install chromium-driver)")?;
    let chromium = find(&["/usr/bin/chromium", "/usr/lib/chromium/chromium"])
        .ok_or("chromium is not installed (Debian: apt install chromium)")?;
    Ok((driver, chromium))
}

/// chromedriver and chromium; `None` (the test skipped, with a message) where they are not
/// installed, unless `AGIGIT_REQUIRE_BROWSER=1` (CI) makes that a failure.
fn browser_or_skip() -> Result<Option<(PathBuf, PathBuf)>, Box<dyn std::error::Error>> {
    let required = std::env::var("AGIGIT_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    match browser() {
        Ok(found) => Ok(Some(found)),
        Err(why) if !required => {
            eprintln!("skipping the browser test: {why}");
            Ok(None)
        }
        Err(why) => Err(format!("AGIGIT_REQUIRE_BROWSER=1 but {why}").into()),
    }
}

/// chromedriver on a free loopback port (stopped on drop), and what a session asks of it: a
/// headless Chromium with its profile under `root`, saving downloads in `downloads`.
struct Browser {
    _driver: Killed,
    port: u16,
    capabilities: serde_json::Map<String, serde_json::Value>,
}

impl Browser {
    fn start(
        (driver, chromium): &(PathBuf, PathBuf),
        root: &Path,
        downloads: &Path,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        std::fs::create_dir_all(downloads)?;
        let port = free_port();
        let driver = Killed(
            Command::new(driver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        );
        wait_for_port(port, "chromedriver")?;
        let profile = root.join("chromium-profile");
        let capabilities = serde_json::from_value(serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
                "prefs": {
                    "download.default_directory": downloads,
                    "download.prompt_for_download": false,
                    "download.directory_upgrade": true,
                    "safebrowsing.enabled": false,
                },
            },
        }))?;
        Ok(Browser {
            _driver: driver,
            port,
            capabilities,
        })
    }

    /// A new browser session (close it when done).
    async fn connect(&self) -> Result<Client, Box<dyn std::error::Error>> {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        Ok(ClientBuilder::new(connector)
            .capabilities(self.capabilities.clone())
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await?)
    }
}

/// `model.safetensors` with three f32 tensors; `b` is every value of `b.weight`.
fn write_model(dir: &Path, a: f32, b: f32) -> TestResult {
    use agigit::delta::{DType, save_safetensors, synth};
    let tensors = [
        ("a.weight", synth::tensor(DType::F32, &[32, 32], &[a; 1024])),
        ("b.weight", synth::tensor(DType::F32, &[32, 32], &[b; 1024])),
        ("c.bias", synth::tensor(DType::F32, &[32], &[0.5; 32])),
    ];
    save_safetensors(
        dir.join("model.safetensors"),
        tensors.iter().map(|(n, t)| (*n, t.view())),
        &BTreeMap::new(),
    )?;
    Ok(())
}

/// Screenshots go here, named by page and window.
fn shots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/web-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) -> TestResult {
    std::fs::write(shots().join(format!("{name}.png")), c.screenshot().await?)?;
    Ok(())
}

async fn press(c: &Client, key: char) -> TestResult {
    let keys = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: key })
        .then(KeyAction::Up { value: key });
    c.perform_actions(keys).await?;
    Ok(())
}

/// The page's text once `css` is on it.
async fn text_of(c: &Client, css: &str) -> Result<String, Box<dyn std::error::Error>> {
    let element = c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await?;
    Ok(element.text().await?)
}

/// No horizontal scrolling of the page itself on this window (wide tables scroll in their box).
async fn fits(c: &Client, page: &str) -> TestResult {
    let overflow = c
        .execute(
            "return document.documentElement.scrollWidth - window.innerWidth;",
            vec![],
        )
        .await?;
    assert!(
        overflow.as_i64().unwrap_or(1) <= 0,
        "{page} overflows the window by {overflow} px"
    );
    Ok(())
}

#[test]
fn the_explorer_in_a_browser() -> TestResult {
    let Some(found) = browser_or_skip()? else {
        return Ok(());
    };
    let root = std::env::temp_dir().join(format!("agigit-web-browser-{}", std::process::id()));
    let mut relays = Relays::start(&root.join("relays"), 3, |_| None)?;
    let urls = relays.urls();
    // Relay 0 serves the web explorer too, fetching from itself and the other two.
    let servers: Vec<String> = urls[1..]
        .iter()
        .map(|u| format!("\"{}\"", u.replacen("ws://", "http://", 1)))
        .collect();
    let config = root.join("relay-0.toml");
    std::fs::write(
        &config,
        format!(
            // An hour: the mirrors follow the pushes through their live subscription.
            "[web]\nenabled = true\nrefresh_secs = 3600\nfetch_from = [{}]\n",
            servers.join(", ")
        ),
    )?;
    relays.set_config(0, config);
    relays.restart(0)?;
    let work = root.join("work");
    std::fs::create_dir_all(&work)?;

    // The foundation: a README and three tensors, pushed to three relays.
    let (home, model) = model_on(&work, &urls);
    std::fs::write(
        model.join("README.md"),
        "# Foundation\n\nThe base model of the browser test.\n",
    )?;
    write_model(&model, 1.0, 2.0)?;
    ok(&agigit(&home, &model, &["commit", "-m", "foundation"]));
    let coordinate = json(&agigit(&home, &model, &["push", "--json"]))["repository"]
        .as_str()
        .ok_or("coordinate")?
        .to_owned();
    // A fork of it that changes b.weight (2 → 3: ‖Δ‖/‖W‖ = 0.5) and pushes.
    let mut fork = vec!["fork", coordinate.as_str(), "tuned", "--id", "tuned"];
    for u in &urls {
        fork.extend(["--relay", u.as_str()]);
    }
    ok(&agigit(&home, &work, &fork));
    let tuned = work.join("tuned");
    write_model(&tuned, 1.0, 3.0)?;
    let tune = json(&agigit(
        &home,
        &tuned,
        &["commit", "-m", "tune b", "--json"],
    ));
    let tune_id = tune["commit"].as_str().ok_or("commit id")?.to_owned();
    // A side branch merged back: the history draws the merge.
    ok(&agigit(&home, &tuned, &["branch", "exp"]));
    std::fs::write(tuned.join("train.py"), "print('train')\n")?;
    ok(&agigit(&home, &tuned, &["commit", "-m", "train script"]));
    ok(&agigit(&home, &tuned, &["checkout", "exp"]));
    std::fs::write(tuned.join("eval.py"), "print('eval')\n")?;
    ok(&agigit(&home, &tuned, &["commit", "-m", "eval script"]));
    ok(&agigit(&home, &tuned, &["checkout", "master"]));
    ok(&agigit(&home, &tuned, &["merge", "exp"]));
    ok(&agigit(&home, &tuned, &["push"]));

    // Someone else's repository, announced on the same relays and not served here.
    let other_home = root.join("other-home");
    let elsewhere = root.join("elsewhere");
    std::fs::create_dir_all(&elsewhere)?;
    ok(&agigit(&other_home, &elsewhere, &["key", "generate"]));
    ok(&agigit(
        &other_home,
        &elsewhere,
        &["init", "--id", "elsewhere"],
    ));
    for u in &urls {
        ok(&agigit(&other_home, &elsewhere, &["relay", "add", u]));
    }
    std::fs::write(elsewhere.join("notes.txt"), "announced, not served")?;
    ok(&agigit(
        &other_home,
        &elsewhere,
        &["commit", "-m", "elsewhere"],
    ));
    ok(&agigit(&other_home, &elsewhere, &["push"]));
    ok(&agigit(
        &other_home,
        &elsewhere,
        &["announce", "--description", "a model on the relays only"],
    ));

    // `agigit serve` over the directory holding both.
    let (serve, port) = support::serve(&home, &[&work])?;

    // chromedriver, and a headless Chromium that saves downloads in `downloads`.
    let downloads = root.join("downloads");
    let browser = Browser::start(&found, &root, &downloads)?;
    let base = format!("http://localhost:{port}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let c = browser.connect().await?;
        let mut outcome = drive(&c, &base, &tune_id, &tuned, &downloads).await;
        if outcome.is_ok() {
            outcome = fetch_announced(&c, &base, &elsewhere, &downloads).await;
        }
        if outcome.is_ok() {
            outcome = relay_explorer(&c, relays.ports()[0], &tune_id).await;
        }
        if outcome.is_ok() {
            outcome = availability(&c, &base, &relays).await;
        }
        let _ = c.close().await;
        outcome
    });
    drop(serve);
    drop(relays);
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&root);
    }
    result
}

async fn drive(
    c: &Client,
    base: &str,
    tune_id: &str,
    tuned: &Path,
    downloads: &Path,
) -> TestResult {
    // The list shows both repositories, the fork with its foundation.
    c.goto(&format!("{base}/")).await?;
    let list = text_of(c, "#repositories").await?;
    assert!(list.contains("model") && list.contains("tuned"), "{list}");
    // …and, apart, what the relays announce that is not here.
    let announced = text_of(c, "#announced").await?;
    assert!(
        announced.contains("a model on the relays only"),
        "{announced}"
    );
    assert!(
        !announced.contains("tuned") && !announced.contains(":model"),
        "{announced}"
    );
    shot(c, "list-wide").await?;

    // Keyboard: j moves to the first row, j to the second, k back, Enter opens it.
    press(c, 'j').await?;
    press(c, 'j').await?;
    press(c, 'k').await?;
    let focused = c
        .execute(
            "return document.activeElement.getAttribute('href');",
            vec![],
        )
        .await?;
    let first = c
        .find(Locator::Css(
            "#repositories tbody tr:first-child a.row-link",
        ))
        .await?;
    assert_eq!(focused.as_str(), first.attr("href").await?.as_deref());
    press(c, '\u{E007}').await?;
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("section.readme"))
        .await?;
    assert!(c.current_url().await?.path().starts_with("/r/"));

    // The fork's page: its foundation, its README (the foundation's, inherited), its parts.
    c.goto(&format!("{base}/r/tuned")).await?;
    let facts = text_of(c, "dl.facts").await?;
    assert!(facts.contains("Fork of"), "{facts}");
    let readme = text_of(c, "article.markdown").await?;
    assert!(
        readme.contains("The base model of the browser test."),
        "{readme}"
    );
    shot(c, "repository-wide").await?;

    // History: the merge (drawn on two lanes), both sides, the tune, the foundation's commit.
    c.goto(&format!("{base}/r/tuned/history")).await?;
    let history = text_of(c, "#history").await?;
    for message in [
        "merge",
        "train script",
        "eval script",
        "tune b",
        "foundation",
    ] {
        assert!(history.contains(message), "{message}: {history}");
    }
    assert!(history.contains("fork of"), "{history}");
    assert_eq!(
        c.find_all(Locator::Css("#history circle.merge"))
            .await?
            .len(),
        1
    );
    let lanes = c
        .execute("return Math.max(...Array.from(document.querySelectorAll('#history svg.graph line')).map(l => Number(l.getAttribute('x2'))));", vec![])
        .await?;
    assert!(
        lanes.as_f64().unwrap_or(0.0) > 14.0,
        "one lane only: {lanes}"
    );
    shot(c, "history-wide").await?;
    // One part's history: only the commits that changed the weights.
    c.goto(&format!("{base}/r/tuned/history?part=params"))
        .await?;
    let params = text_of(c, "#history").await?;
    assert!(
        params.contains("tune b") && !params.contains("train script"),
        "{params}"
    );
    // The keyboard: j to the first row, Enter opens its commit.
    c.goto(&format!("{base}/r/tuned/history")).await?;
    text_of(c, "#history").await?;
    press(c, 'j').await?;
    press(c, '\u{E007}').await?;
    text_of(c, "#commit-id").await?;
    assert!(c.current_url().await?.path().contains("/commit/"));
    c.goto(&format!("{base}/r/tuned/commit/{tune_id}")).await?;
    let id = text_of(c, "#commit-id").await?;
    assert_eq!(id, tune_id);

    // The commit: b.weight changed, ‖Δ‖/‖W‖ = 0.5, every value; a and c unchanged.
    let row = text_of(c, r#"tr[data-tensor="b.weight"]"#).await?;
    assert!(
        row.contains("0.5000") && row.contains("100.0%") && row.contains("F32[32×32]"),
        "{row}"
    );
    assert!(
        c.find(Locator::Css(r#"tr[data-tensor="a.weight"]"#))
            .await
            .is_err()
    );
    assert!(text_of(c, "figure.chart").await?.contains("b.weight"));
    shot(c, "commit-wide").await?;

    // One tensor of the commit, downloaded from its row: a safetensors file of its own.
    let got = download_with(
        c,
        &format!("{base}/r/tuned/commit/{tune_id}"),
        r#"//tr[@data-tensor="b.weight"]//button"#,
        "b.weight.safetensors",
        downloads,
    )
    .await?;
    let alone = downloads.join("alone.safetensors");
    std::fs::write(&alone, &got)?;
    let file = agigit::delta::SafetensorsFile::open(&alone)?;
    let original = agigit::delta::SafetensorsFile::open(tuned.join("model.safetensors"))?;
    assert_eq!(file.names().collect::<Vec<_>>(), ["b.weight"]);
    assert_eq!(
        file.tensor("b.weight").map(|t| t.data().to_vec()),
        original.tensor("b.weight").map(|t| t.data().to_vec())
    );
    std::fs::remove_file(&alone)?;

    // A download through the page: streamed over the WebSocket, verified, saved.
    let saved = download(
        c,
        &format!("{base}/r/tuned/files"),
        "model.safetensors",
        downloads,
    )
    .await?;
    shot(c, "download-wide").await?;
    assert_eq!(saved, std::fs::read(tuned.join("model.safetensors"))?);

    // A narrow window (a phone's): every page fits; wide tables scroll in their own box.
    c.set_window_size(390, 844).await?;
    for (page, name) in [
        ("/".to_owned(), "list"),
        ("/r/tuned".to_owned(), "repository"),
        ("/r/tuned/history".to_owned(), "history"),
        (format!("/r/tuned/commit/{tune_id}"), "commit"),
    ] {
        c.goto(&format!("{base}{page}")).await?;
        c.wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css("main"))
            .await?;
        fits(c, &page).await?;
        shot(c, &format!("{name}-narrow")).await?;
    }
    Ok(())
}

/// Downloads `file` through the files page at `page`: its button, the WebSocket transfer
/// verified on the page, the file the browser saved in `downloads` (read, then removed).
async fn download(
    c: &Client,
    page: &str,
    file: &str,
    downloads: &Path,
) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let button = format!("//tr[td[text()='{file}']]//button");
    download_with(c, page, &button, file, downloads).await
}

/// Clicks the download button at XPath `button` on `page`; the file the browser saved as
/// `saved` once the page says it verified.
async fn download_with(
    c: &Client,
    page: &str,
    button: &str,
    saved: &str,
    downloads: &Path,
) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    c.goto(page).await?;
    let button = c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::XPath(button))
        .await?;
    button.click().await?;
    c.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css(r#"#transfer[data-state="verified"]"#))
        .await?;
    let saved = downloads.join(saved);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !saved.is_file()
        || downloads
            .read_dir()?
            .any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "crdownload")))
    {
        assert!(
            Instant::now() < deadline,
            "the browser did not save the file in {}",
            downloads.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bytes = std::fs::read(&saved)?;
    std::fs::remove_file(&saved)?;
    Ok(bytes)
}

/// A repository only on the relays, fetched from the list's button: the server clones it into
/// its cache (every signature and hash checked), shows it, and serves its files.
async fn fetch_announced(c: &Client, base: &str, elsewhere: &Path, downloads: &Path) -> TestResult {
    c.set_window_size(1280, 900).await?;
    c.goto(&format!("{base}/")).await?;
    let button = c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::XPath(
            "//table[@id='announced']//tr[contains(., 'a model on the relays only')]//button",
        ))
        .await?;
    button.click().await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.current_url().await?.path() != "/r/elsewhere" {
        if let Ok(error) = c.find(Locator::Css("section.error")).await {
            return Err(format!("the fetch failed: {}", error.text().await?).into());
        }
        assert!(
            Instant::now() < deadline,
            "the fetch never landed on the repository's page"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let page = text_of(c, "main").await?;
    assert!(
        page.contains("elsewhere") && page.contains("code"),
        "{page}"
    );
    shot(c, "fetched-wide").await?;
    let saved = download(
        c,
        &format!("{base}/r/elsewhere/files"),
        "notes.txt",
        downloads,
    )
    .await?;
    assert_eq!(saved, std::fs::read(elsewhere.join("notes.txt"))?);
    // Listed among the explorer's own now, no longer as only announced.
    c.goto(&format!("{base}/")).await?;
    assert!(text_of(c, "#repositories").await?.contains("elsewhere"));
    assert!(c.find(Locator::Css("#announced")).await.is_err());
    Ok(())
}

/// The relay's own explorer, in the browser: both repositories mirrored from the relays, the
/// fork's commit with its tensor diff.
async fn relay_explorer(c: &Client, port: u16, tune_id: &str) -> TestResult {
    c.set_window_size(1280, 900).await?;
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        c.goto(&format!("{base}/")).await?;
        let list = text_of(c, "main").await?;
        if list.contains("tuned") && list.contains("model") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the relay's explorer never listed both: {list}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    shot(c, "relay-list-wide").await?;
    c.goto(&format!("{base}/r/tuned/commit/{tune_id}")).await?;
    let row = text_of(c, r#"tr[data-tensor="b.weight"]"#).await?;
    assert!(row.contains("0.5000"), "{row}");
    shot(c, "relay-commit-wide").await?;
    // Its availability page audits through the servers the relay fetches from (itself and the
    // other two): every pack held.
    c.goto(&format!("{base}/r/model/availability")).await?;
    let verdict = text_of(c, "#verdict").await?;
    assert!(verdict.contains("Every pack meets"), "{verdict}");
    assert!(!c.find_all(Locator::Css("td.held")).await?.is_empty());
    shot(c, "relay-availability-wide").await?;
    Ok(())
}

/// The availability grid: every segment held before; after two of the three servers lose
/// their disks, a segment below k is drawn red and the verdict says so. (Placement gives the
/// first server 4 of each single segment's 10 shards and the others 3: the first two go, so
/// the 3 left are below k = 4.)
async fn availability(c: &Client, base: &str, relays: &Relays) -> TestResult {
    c.set_window_size(1280, 900).await?;
    c.goto(&format!("{base}/r/model/availability")).await?;
    let verdict = text_of(c, "#verdict").await?;
    assert!(verdict.contains("Every pack meets"), "{verdict}");
    assert!(c.find(Locator::Css("td.below-k")).await.is_err());
    assert!(!c.find_all(Locator::Css("td.held")).await?.is_empty());
    shot(c, "availability-wide").await?;
    for i in [0, 1] {
        let wiped = blob_files(&relays.data(i));
        assert!(!wiped.is_empty());
        for f in wiped {
            std::fs::remove_file(f)?;
        }
    }
    c.refresh().await?;
    let verdict = text_of(c, "#verdict").await?;
    assert!(verdict.contains("below their target"), "{verdict}");
    shot(c, "availability-lost").await?;
    let red = c.find_all(Locator::Css("td.below-k")).await?;
    assert!(!red.is_empty(), "no segment is drawn below k");
    let margins = text_of(c, "dd.margin").await?;
    assert!(margins.contains("cannot be rebuilt now"), "{margins}");
    Ok(())
}

/// A partial clone served: the parts it does not hold are said to be missing (never shown as
/// empty), and the page's button fetches one — its files then in the clone and on the page. A
/// post from another site is refused and changes nothing.
#[test]
fn serve_widens_a_partial_clone_from_its_page() -> TestResult {
    let root = std::env::temp_dir().join(format!("agigit-web-partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let relays = Relays::start(&root.join("relays"), 1, |_| None)?;
    let (home, model) = model_on(&root, &relays.urls());
    std::fs::write(model.join("train.py"), "print('train')\n")?;
    write_model(&model, 1.0, 2.0)?;
    ok(&agigit(&home, &model, &["commit", "-m", "first"]));
    let coordinate = json(&agigit(&home, &model, &["push", "--json"]))["repository"]
        .as_str()
        .ok_or("coordinate")?
        .to_owned();
    let url = relays.urls()[0].clone();
    ok(&agigit(
        &home,
        &root,
        &[
            "clone",
            &coordinate,
            "part",
            "--relay",
            &url,
            "--parts",
            "code",
        ],
    ));
    let part = root.join("part");
    assert!(!part.join("model.safetensors").exists());
    let (_serve, port) = support::serve(&home, &[&part])?;
    let (code, page) = http_get(port, "/r/model", "text/html")?;
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("params</span> — not in this clone"), "{page}");
    assert!(page.contains(r#"action="/r/model/fetch-part""#), "{page}");
    let post = |origin: &str| {
        support::http_request(
            port,
            "POST",
            "/r/model/fetch-part",
            &[
                ("Origin", origin),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            "part=params",
        )
    };
    let (code, _) = post("http://evil.example")?;
    assert_eq!(code, 403);
    assert!(!part.join("model.safetensors").exists());
    let (code, _) = post(&format!("http://127.0.0.1:{port}"))?;
    assert_eq!(code, 303);
    assert_eq!(
        std::fs::read(part.join("model.safetensors"))?,
        std::fs::read(model.join("model.safetensors"))?
    );
    let (_, page) = http_get(port, "/r/model", "text/html")?;
    assert!(
        !page.contains("params</span> — not in this clone"),
        "{page}"
    );
    assert!(
        page.contains("data/train</span> — not in this clone"),
        "{page}"
    );
    drop(relays);
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

/// `agigit serve` where there is no repository says so (exit code 3, invalid), and does not
/// start; a busy port is a readable failure too.
#[test]
fn serve_refuses_what_it_cannot_show() -> TestResult {
    let root = std::env::temp_dir().join(format!("agigit-web-empty-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("empty"))?;
    let out = agigit(
        &root.join("home"),
        &root.join("empty"),
        &["serve", "--listen", "127.0.0.1:0"],
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no agigit repository"),
        "{out:?}"
    );

    ok(&agigit(&root.join("home"), &root, &["init", "model"]));
    let busy = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = busy.local_addr()?.to_string();
    let out = agigit(
        &root.join("home"),
        &root.join("model"),
        &["serve", "--listen", &addr],
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot listen"),
        "{out:?}"
    );
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

/// The relay's explorer (events in `name`'s store) in the browser: the list, the commit's
/// tensor diff, and `model.safetensors` downloaded through the files page, byte-equal.
async fn relay_pages_in_browser(
    c: &Client,
    port: u16,
    name: &str,
    commit: &str,
    model: &Path,
    downloads: &Path,
) -> TestResult {
    let base = format!("http://127.0.0.1:{port}");
    c.goto(&format!("{base}/")).await?;
    let list = text_of(c, "#repositories").await?;
    assert!(
        list.contains("model") && list.contains("what its owner says"),
        "{list}"
    );
    assert!(!list.contains("secret"), "{list}");
    shot(c, &format!("relay-{name}-list")).await?;
    c.goto(&format!("{base}/r/model/commit/{commit}")).await?;
    let row = text_of(c, r#"tr[data-tensor="b.weight"]"#).await?;
    assert!(row.contains("F32"), "{row}");
    shot(c, &format!("relay-{name}-commit")).await?;
    let saved = download(
        c,
        &format!("{base}/r/model/files"),
        "model.safetensors",
        downloads,
    )
    .await?;
    assert_eq!(saved, std::fs::read(model.join("model.safetensors"))?);
    Ok(())
}

/// `agigit-relay --web` with its events in SQLite: see [`relay_explorer_case`].
#[test]
fn the_relays_explorer_shows_the_repositories_it_stores() -> TestResult {
    relay_explorer_case("sqlite", "")
}

/// The same with the relay's events in PostgreSQL, on a server the test starts (skipped with a
/// message where PostgreSQL is not installed, unless `AGIGIT_REQUIRE_POSTGRES=1`, as in CI).
#[test]
fn the_relays_explorer_on_postgres() -> TestResult {
    let Some(server) = postgres::TempPostgres::start("web-explorer")? else {
        return Ok(());
    };
    relay_explorer_case("postgres", &format!("postgres = {:?}\n", server.url))
}

/// `agigit-relay --web`: a browser's `/` lists the public repositories pushed to it, mirrored
/// from the relay itself, with their pages; a private one is not mirrored; Nostr clients still
/// get NIP-11 at the same `/`. `config` is the top of the relay's configuration file.
fn relay_explorer_case(name: &str, config: &str) -> TestResult {
    let root = std::env::temp_dir().join(format!("agigit-web-relay-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let config_file = root.join("relay.toml");
    std::fs::write(
        &config_file,
        // An hour: the mirror follows the push through its live subscription.
        format!("{config}[web]\nenabled = true\nrefresh_secs = 3600\n"),
    )?;
    let config = config_file;
    let relays = Relays::start(&root.join("relays"), 1, |_| Some(config.clone()))?;
    let port = relays.ports()[0];
    let work = root.join("work");
    std::fs::create_dir_all(&work)?;
    let (home, model) = model_on(&work, &relays.urls());
    std::fs::write(model.join("README.md"), "# Served by the relay\n")?;
    write_model(&model, 1.0, 2.0)?;
    let commit = json(&agigit(&home, &model, &["commit", "-m", "first", "--json"]))["commit"]
        .as_str()
        .ok_or("commit id")?
        .to_owned();
    // What the owner says of it (kept in its configuration: the push announces it again).
    ok(&agigit(
        &home,
        &model,
        &[
            "announce",
            "--description",
            "what its owner says",
            "--license",
            "MIT",
        ],
    ));
    let coordinate = json(&agigit(&home, &model, &["push", "--json"]))["repository"]
        .as_str()
        .ok_or("coordinate")?
        .to_owned();
    // A private repository on the same relay: announced, never fetched by the relay.
    ok(&agigit(&home, &work, &["init", "secret", "--private"]));
    let secret = work.join("secret");
    ok(&agigit(
        &home,
        &secret,
        &["relay", "add", &relays.urls()[0]],
    ));
    std::fs::write(secret.join("notes.txt"), "PRIVATE-7f3a")?;
    ok(&agigit(&home, &secret, &["commit", "-m", "private"]));
    ok(&agigit(&home, &secret, &["push"]));

    let deadline = Instant::now() + Duration::from_secs(60);
    let list = loop {
        let (code, body) = http_get(port, "/", "text/html")?;
        assert_eq!(code, 200, "{body}");
        if body.contains(r#"href="/r/model""#) && body.contains("what its owner says") {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "the relay's explorer never listed the repository: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(!list.contains("/r/secret"), "{list}");
    assert!(list.contains("MIT"), "{list}");
    let (code, page) = http_get(port, "/r/model", "text/html")?;
    assert_eq!(code, 200);
    assert!(page.contains("Served by the relay"), "{page}");
    let (code, diff) = http_get(port, &format!("/r/model/commit/{commit}"), "text/html")?;
    assert_eq!(code, 200);
    assert!(
        diff.contains(r#"data-tensor="b.weight""#) && diff.contains("F32[32×32]"),
        "{diff}"
    );
    // Nostr clients keep their answers at the same address.
    let (code, info) = http_get(port, "/", "application/nostr+json")?;
    assert_eq!(code, 200);
    assert!(info.contains("supported_nips"), "{info}");
    // An order for the model, posted on the relay: the relay's market page folds it (open, for
    // this relay to take); rounds it leaves to the command line, and says so.
    let relay_key = serde_json::from_str::<serde_json::Value>(&info)?["pubkey"]
        .as_str()
        .ok_or("the relay's key")?
        .to_owned();
    let posted = json(&agigit(
        &home,
        &model,
        &[
            "--json",
            "order",
            "--relay-url",
            &relays.urls()[0],
            "pull",
            &coordinate,
            "--model",
            &commit,
            "--relay",
            &relay_key,
            "--price",
            "10",
        ],
    ));
    let order = posted["id"].as_str().ok_or("the order's id")?;
    let (code, market) = http_get(port, "/r/model/market", "text/html")?;
    assert_eq!(code, 200, "{market}");
    assert!(
        market.contains(&format!(r#"data-order="{order}""#)),
        "{market}"
    );
    assert!(
        market.contains("10 sats") && market.contains("does not fold rounds"),
        "{market}"
    );
    // The same pages in Chromium, and a download through the relay's page.
    if let Some(found) = browser_or_skip()? {
        let downloads = root.join("downloads");
        let browser = Browser::start(&found, &root, &downloads)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let c = browser.connect().await?;
            let outcome = relay_pages_in_browser(&c, port, name, &commit, &model, &downloads).await;
            let _ = c.close().await;
            outcome
        })?;
    }
    // Nothing of the private repository was written by the mirror.
    let mirrored = support::walk_files(&relays.data(0).join("explorer"));
    assert!(!mirrored.is_empty());
    for f in mirrored {
        let bytes = std::fs::read(&f)?;
        assert!(
            !bytes.windows(12).any(|w| w == b"PRIVATE-7f3a"),
            "{}",
            f.display()
        );
    }
    drop(relays);
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
