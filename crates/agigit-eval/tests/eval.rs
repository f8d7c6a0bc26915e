//! Evaluations whose values are known in closed form: a model that predicts nothing (every
//! token costs `log2 V` bits) and a bigram model built by hand (the right next byte has
//! probability one half, so text that follows it costs exactly one bit per byte), through
//! candle-transformers' real forward pass; and the refusals of hostile or unsupported models.

#![cfg(feature = "evaluate")]
#![allow(clippy::expect_used, clippy::cast_precision_loss, reason = "tests")]

use agigit_delta::{DType, Tensor};
use agigit_eval::toy::{self, Toy};
use agigit_eval::{Document, EvalError, EvalOptions, ModelFiles, add_documents, evaluate};
use proptest::prelude::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const V: usize = toy::VOCAB;
const H: usize = toy::HIDDEN;

fn model(model_type: &str, bos: Option<u32>, uniform: bool) -> ModelFiles {
    let which = if uniform {
        Toy::Uniform
    } else {
        Toy::Cycle(b"abcdefgh")
    };
    toy::model(which, model_type, bos)
}

fn doc(name: &str, text: &str) -> Document {
    Document {
        name: name.to_owned(),
        text: text.to_owned(),
    }
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance * b.abs().max(1.0)
}

#[test]
fn a_model_that_predicts_nothing_costs_log2_v_bits_per_token() -> TestResult {
    let docs = [doc("a.txt", "hello, held-out world"), doc("b.txt", "x")];
    let bytes: usize = docs.iter().map(|d| d.text.len()).sum();
    // With a prefix token every token is predicted; without, the first is charged log2 V: the
    // same total either way.
    for bos in [Some(0), None] {
        let e = evaluate(&model("qwen2", bos, true), &docs, EvalOptions::default())?;
        assert_eq!(e.bytes, bytes as u64);
        assert_eq!(e.tokens, bytes as u64);
        assert!(
            close(e.bits_per_byte, 8.0, 1e-5),
            "{bos:?}: {}",
            e.bits_per_byte
        );
        assert!(close(e.bits_per_token, 8.0, 1e-5));
        assert_eq!(e.documents.len(), 2);
        assert_eq!(e.documents[1].name, "b.txt");
        assert!(close(e.documents[1].bits, 8.0, 1e-5));
    }
    Ok(())
}

#[test]
fn text_the_bigram_model_predicts_costs_one_bit_per_byte_in_any_window() -> TestResult {
    let text = "abcdefgh".repeat(12);
    // The prefix token is `h`, whose successor is `a`: every token has probability one half.
    let h = Some(u32::from(b'h'));
    let mut values = Vec::new();
    for context in [2, 3, 7, 64] {
        let e = evaluate(
            &model("qwen2", h, false),
            &[doc("cycle.txt", &text)],
            EvalOptions::with_context(context),
        )?;
        assert_eq!(e.tokens, text.len() as u64, "each token scored once");
        assert!(
            close(e.bits_per_byte, 1.0, 1e-5),
            "{context}: {}",
            e.bits_per_byte
        );
        values.push(e.bits_per_byte);
    }
    // Text against the model: every token is the wrong one, log2(2 (V - 1)) bits each.
    let e = evaluate(
        &model("qwen2", h, false),
        &[doc("reverse.txt", "hgfedcba")],
        EvalOptions::default(),
    )?;
    // The first token after `h` is `h` itself (wrong); every one after is wrong too.
    let wrong = (2.0 * (V as f64 - 1.0)).log2();
    assert!(close(wrong, toy::WRONG_BITS, 1e-12));
    assert!(close(e.bits_per_byte, wrong, 1e-5), "{}", e.bits_per_byte);
    // Two documents: each one's bits are its own tokens'.
    let mixed = evaluate(
        &model("qwen2", h, false),
        &[doc("right.txt", "abcd"), doc("wrong.txt", "aaaa")],
        EvalOptions::default(),
    )?;
    // `abcd` after `h`: all four right. `aaaa` after `h`: the first right, three wrong.
    assert!(close(mixed.documents[0].bits, 4.0, 1e-5));
    assert!(close(mixed.documents[1].bits, 1.0 + 3.0 * wrong, 1e-5));
    assert!(close(mixed.bits_per_byte, (5.0 + 3.0 * wrong) / 8.0, 1e-5));
    Ok(())
}

#[test]
fn llama_and_mistral_are_qwen2_without_attention_biases() -> TestResult {
    let text = "abcdefgh, abcdefgh!".to_owned();
    let docs = [doc("t.txt", &text)];
    let qwen = evaluate(
        &model("qwen2", Some(0), false),
        &docs,
        EvalOptions::default(),
    )?;
    for family in ["llama", "mistral"] {
        let other = evaluate(
            &model(family, Some(0), false),
            &docs,
            EvalOptions::default(),
        )?;
        assert_eq!(other.model_type, family);
        assert!(close(other.bits_per_byte, qwen.bits_per_byte, 1e-9));
    }
    Ok(())
}

/// A model whose attention and MLP do real work: the same value on every run, and one that
/// depends on the window (so the windows are really the model's context).
#[test]
fn a_random_model_evaluates_the_same_every_time_and_uses_its_context() -> TestResult {
    let text = "the quick brown fox jumps over the lazy dog; ".repeat(6);
    let docs = [doc("fox.txt", &text)];
    let m = toy::model(Toy::Random(7), "qwen2", Some(0));
    let wide = evaluate(&m, &docs, EvalOptions::with_context(256))?;
    let again = evaluate(&m, &docs, EvalOptions::with_context(256))?;
    assert_eq!(wide, again, "bit for bit");
    let narrow = evaluate(&m, &docs, EvalOptions::with_context(2))?;
    assert_eq!(narrow.tokens, wide.tokens);
    assert!(
        (narrow.bits_per_byte - wide.bits_per_byte).abs() > 1e-6,
        "{} vs {}",
        narrow.bits_per_byte,
        wide.bits_per_byte
    );
    // Near-uniform at initialization: close to 8 bits, not equal.
    assert!(
        (wide.bits_per_byte - 8.0).abs() < 0.5,
        "{}",
        wide.bits_per_byte
    );
    assert!((wide.bits_per_byte - 8.0).abs() > 1e-4);
    let other = evaluate(
        &toy::model(Toy::Random(8), "qwen2", Some(0)),
        &docs,
        EvalOptions::with_context(256),
    )?;
    assert_ne!(other.bits_per_byte, wide.bits_per_byte);
    Ok(())
}

/// Every document's loss is under the evaluation's root with its path; a loss changed by a
/// hair, or moved to another index, is not.
#[test]
fn every_documents_loss_proves_against_the_root_and_a_changed_one_does_not() -> TestResult {
    let docs: Vec<Document> = (0..5)
        .map(|i| doc(&format!("{i}.txt"), &"abcdefgh".repeat(i + 1)))
        .collect();
    let e = evaluate(
        &model("qwen2", Some(0), false),
        &docs,
        EvalOptions::default(),
    )?;
    let root = e.loss_root();
    for (i, loss) in e.documents.iter().enumerate() {
        let path = e.loss_path(i).ok_or("a path")?;
        assert!(agigit_eval::verify_loss(&root, 5, i as u64, loss, &path));
        let mut changed = loss.clone();
        changed.bits = f64::from_bits(changed.bits.to_bits() + 1);
        assert!(!agigit_eval::verify_loss(
            &root, 5, i as u64, &changed, &path
        ));
        assert!(!agigit_eval::verify_loss(
            &root,
            5,
            ((i + 1) % 5) as u64,
            loss,
            &path
        ));
    }
    assert!(e.loss_path(5).is_none());
    // Another set of documents, another root.
    let fewer = evaluate(
        &model("qwen2", Some(0), false),
        &docs[..4],
        EvalOptions::default(),
    )?;
    assert_ne!(fewer.loss_root(), root);
    Ok(())
}

#[test]
fn unsupported_and_inconsistent_models_are_refused_with_what_to_do() -> TestResult {
    let docs = [doc("t.txt", "abc")];
    let opts = EvalOptions::default();
    let with_config = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut m = model("qwen2", Some(0), true);
        let mut c: serde_json::Value = serde_json::from_slice(&m.config).expect("json");
        edit(&mut c);
        m.config = c.to_string().into_bytes();
        evaluate(&m, &docs, opts)
    };
    let e = with_config(&|c| c["model_type"] = "gpt-neo".into()).expect_err("unsupported");
    assert!(matches!(&e, EvalError::Unsupported { model_type } if model_type == "gpt-neo"));
    assert!(e.to_string().contains("qwen2, llama, mistral"), "{e}");
    let e = with_config(&|c| {
        c.as_object_mut().expect("object").remove("model_type");
    })
    .expect_err("no model type");
    assert!(matches!(e, EvalError::Unsupported { .. }));
    // A hostile configuration cannot make us allocate by its numbers.
    for (field, value) in [
        ("num_hidden_layers", serde_json::json!(1u64 << 40)),
        ("hidden_size", serde_json::json!(1u64 << 40)),
        ("vocab_size", serde_json::json!(0)),
        ("num_attention_heads", serde_json::json!(3)),
        ("num_key_value_heads", serde_json::json!(3)),
        ("rope_theta", serde_json::json!(-1.0)),
        ("hidden_act", serde_json::json!("no-such-activation")),
        (
            "rope_scaling",
            serde_json::json!({"type": "linear", "factor": 2.0}),
        ),
    ] {
        let e = with_config(&|c| c[field] = value.clone()).expect_err(field);
        assert!(matches!(e, EvalError::Config(_)), "{field}: {e}");
    }
    // A configuration bigger than its tensors: the numbers are checked before candle runs.
    let e = with_config(&|c| c["num_hidden_layers"] = 3.into()).expect_err("missing layer");
    assert!(
        matches!(&e, EvalError::Parameters(m) if m.contains("model.layers.2.")),
        "{e}"
    );
    let e = with_config(&|c| c["intermediate_size"] = 9.into()).expect_err("shape");
    assert!(
        matches!(&e, EvalError::Parameters(m) if m.contains("[9, 256]")),
        "{e}"
    );
    // No head and no tied embeddings.
    let mut m = model("qwen2", Some(0), true);
    m.tensors.retain(|(n, _)| n != "lm_head.weight");
    let e = evaluate(&m, &docs, opts).expect_err("no head");
    assert!(e.to_string().contains("lm_head.weight"), "{e}");
    // Integer parameters are not a model.
    let mut m = model("qwen2", Some(0), true);
    m.tensors[1].1 = Tensor::new(DType::I32, vec![H], vec![0; H * 4])?;
    assert!(matches!(
        evaluate(&m, &docs, opts),
        Err(EvalError::Parameters(_))
    ));
    // A tokenizer that does not load, and one whose ids leave the vocabulary.
    let mut m = model("qwen2", Some(0), true);
    m.tokenizer = b"{\"not\": \"a tokenizer\"}".to_vec();
    assert!(matches!(
        evaluate(&m, &docs, opts),
        Err(EvalError::Tokenizer(_))
    ));
    let e = with_config(&|c| c["vocab_size"] = 64.into()).expect_err("vocabulary");
    assert!(
        matches!(e, EvalError::Parameters(_) | EvalError::Tokenizer(_)),
        "{e}"
    );
    // Nothing to evaluate.
    let m = model("qwen2", Some(0), true);
    assert!(matches!(
        evaluate(&m, &[doc("empty.txt", "")], opts),
        Err(EvalError::NoText)
    ));
    Ok(())
}

#[test]
fn documents_come_from_text_and_json_lines_files() -> TestResult {
    let mut docs = Vec::new();
    assert!(add_documents("notes/a.TXT", b"one", &mut docs)?);
    assert!(add_documents(
        "set.jsonl",
        b"{\"text\": \"two\"}\n\n{\"text\": \"three\", \"id\": 3}\n",
        &mut docs
    )?);
    assert!(!add_documents("tokens.bin", &[0xff, 0, 1], &mut docs)?);
    assert_eq!(
        docs,
        [
            doc("notes/a.TXT", "one"),
            doc("set.jsonl:1", "two"),
            doc("set.jsonl:3", "three"),
        ]
    );
    let e = add_documents(
        "bad.jsonl",
        b"{\"text\": \"ok\"}\n{\"text\": 5}\n",
        &mut docs,
    )
    .expect_err("a bad line");
    assert!(
        matches!(&e, EvalError::Data { file, line: Some(2), .. } if file == "bad.jsonl"),
        "{e}"
    );
    assert!(e.to_string().contains("bad.jsonl, line 2"), "{e}");
    let e = add_documents("latin1.txt", &[0x63, 0x61, 0x66, 0xe9], &mut docs).expect_err("utf-8");
    assert!(e.to_string().contains("not UTF-8"), "{e}");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any texts written as JSON Lines come back as the same documents, in order; any bytes at
    /// all give documents or a typed error, never a panic.
    #[test]
    fn json_lines_round_trip(texts in proptest::collection::vec(".*", 0..8), junk in proptest::collection::vec(any::<u8>(), 0..256)) {
        let file: String = texts
            .iter()
            .map(|t| serde_json::json!({"text": t}).to_string() + "\n")
            .collect();
        let mut docs = Vec::new();
        add_documents("d.jsonl", file.as_bytes(), &mut docs).expect("valid lines");
        let back: Vec<String> = docs.into_iter().map(|d| d.text).collect();
        prop_assert_eq!(back, texts);
        let _ = add_documents("junk.jsonl", &junk, &mut Vec::new());
        let _ = add_documents("junk.txt", &junk, &mut Vec::new());
    }
}

fn arb_loss() -> impl Strategy<Value = agigit_eval::DocumentLoss> {
    ("\\PC{0,40}", any::<u64>(), any::<u64>(), 0.0f64..1e12).prop_map(
        |(name, bytes, tokens, bits)| agigit_eval::DocumentLoss {
            name,
            bytes,
            tokens,
            bits,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn loss_lists_round_trip(losses in prop::collection::vec(arb_loss(), 0..20)) {
        let bytes = agigit_eval::encode_losses(&losses);
        prop_assert_eq!(agigit_eval::decode_losses(&bytes, losses.len() as u64), Ok(losses.clone()));
        // Another count, a byte short or one more: refused.
        prop_assert!(agigit_eval::decode_losses(&bytes, losses.len() as u64 + 1).is_err());
        if !bytes.is_empty() {
            prop_assert!(agigit_eval::decode_losses(&bytes[..bytes.len() - 1], losses.len() as u64).is_err());
        }
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert!(agigit_eval::decode_losses(&longer, losses.len() as u64).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic_as_a_loss_list(bytes in prop::collection::vec(any::<u8>(), 0..200), count in any::<u64>()) {
        let _ = agigit_eval::decode_losses(&bytes, count);
    }
}

#[test]
fn a_corrupt_loss_list_is_refused_with_the_document_named() {
    let losses = vec![
        agigit_eval::DocumentLoss {
            name: "a.txt".into(),
            bytes: 3,
            tokens: 3,
            bits: 1.5,
        },
        agigit_eval::DocumentLoss {
            name: "b.txt".into(),
            bytes: 4,
            tokens: 2,
            bits: 2.5,
        },
    ];
    let bytes = agigit_eval::encode_losses(&losses);
    // A negative loss in the second document (its bits are the last 8 bytes).
    let mut negative = bytes.clone();
    let at = negative.len() - 8;
    negative[at..].copy_from_slice(&(-1.0f64).to_bits().to_le_bytes());
    let e = agigit_eval::decode_losses(&negative, 2).expect_err("a negative loss");
    assert!(e.to_string().contains("document 1"), "{e}");
    // A name that is not UTF-8; a name length past the end; a count far beyond the bytes.
    let mut bad_name = bytes.clone();
    bad_name[4] = 0xff;
    assert!(agigit_eval::decode_losses(&bad_name, 2).is_err());
    let mut long_name = bytes.clone();
    long_name[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(agigit_eval::decode_losses(&long_name, 2).is_err());
    assert!(agigit_eval::decode_losses(&bytes, u64::MAX).is_err());
}
