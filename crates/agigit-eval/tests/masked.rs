//! The BERT family, scored by masked-LM loss (every token masked once, in seeded groups):
//! through candle-transformers' `BertForMaskedLM` on a small model with random weights — every
//! token charged once, the same value every time, a head that favours the documents' letters
//! charged fewer bits — and the refusals of checkpoints that cannot be scored.

#![cfg(feature = "evaluate")]
#![allow(clippy::expect_used, clippy::cast_precision_loss, reason = "tests")]

use agigit_delta::Tensor;
use agigit_eval::toy;
use agigit_eval::{Document, EvalError, EvalOptions, ModelFiles, evaluate};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn doc(name: &str, text: &str) -> Document {
    Document {
        name: name.to_owned(),
        text: text.to_owned(),
    }
}

/// Text of the letters a to d, long enough to take several windows.
fn documents() -> Vec<Document> {
    vec![
        doc("one.txt", "abcdabcdaabbccdd"),
        doc("two.txt", &"dcbabcda".repeat(40)),
        doc("three.txt", "a"),
    ]
}

fn tensor(m: &ModelFiles, name: &str) -> Tensor {
    m.tensors
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t.clone())
        .expect(name)
}

fn set(m: &mut ModelFiles, name: &str, t: Tensor) {
    m.tensors.retain(|(n, _)| n != name);
    m.tensors.push((name.to_owned(), t));
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn a_bert_charges_every_token_once_the_same_every_time() -> TestResult {
    let docs = documents();
    let m = toy::bert(7);
    let opts = EvalOptions::with_context(32);
    let e = evaluate(&m, &docs, opts)?;
    assert_eq!(e.model_type, "bert");
    assert_eq!(e.context, 32);
    // One token per ASCII byte, each charged once, whatever the windows.
    let bytes: u64 = docs.iter().map(|d| d.text.len() as u64).sum();
    assert_eq!((e.bytes, e.tokens), (bytes, bytes));
    for (d, loss) in docs.iter().zip(&e.documents) {
        assert_eq!(loss.tokens, d.text.len() as u64);
        assert!(loss.bits.is_finite() && loss.bits > 0.0, "{loss:?}");
    }
    let sum: f64 = e.documents.iter().map(|d| d.bits).sum();
    assert!((sum / bytes as f64 - e.bits_per_byte).abs() < 1e-12);
    // The same, bit for bit, evaluated again; another model or window gives another value.
    assert_eq!(evaluate(&m, &docs, opts)?, e);
    let other = evaluate(&toy::bert(8), &docs, opts)?;
    assert_ne!(other.bits_per_byte, e.bits_per_byte);
    let wider = evaluate(&m, &docs, EvalOptions::with_context(128))?;
    assert_ne!(wider.documents[1].bits, e.documents[1].bits);
    // The first document fits one window either way: the windows change nothing for it.
    assert_eq!(wider.documents[0].bits, e.documents[0].bits);
    println!(
        "random bert: {:.4} bits per byte (a uniform guess is {:.4})",
        e.bits_per_byte,
        (toy::BERT_VOCAB as f64).log2()
    );
    Ok(())
}

#[test]
fn a_head_that_favours_the_documents_letters_is_charged_fewer_bits() -> TestResult {
    let docs = documents();
    let opts = EvalOptions::with_context(64);
    let base = toy::bert(7);
    let mut better = toy::bert(7);
    let mut bias = f32s(&tensor(&better, "cls.predictions.bias"));
    for letter in b"abcd" {
        bias[usize::from(*letter)] += 40.0;
    }
    set(
        &mut better,
        "cls.predictions.bias",
        Tensor::from_f32(vec![toy::BERT_VOCAB], &bias)?,
    );
    let (b, g) = (
        evaluate(&base, &docs, opts)?,
        evaluate(&better, &docs, opts)?,
    );
    // Near-uniform weights guess near log2(259) = 8.02 bits (a little under: the tied head
    // leans toward the tokens around the mask); a head that rules out all but the four letters
    // the documents use, in equal measure, guesses them at about two bits.
    println!(
        "random bert {:.4} bits per byte, with the letters favoured {:.4}",
        b.bits_per_byte, g.bits_per_byte
    );
    assert!(b.bits_per_byte > 7.0, "{}", b.bits_per_byte);
    assert!((1.9..2.3).contains(&g.bits_per_byte), "{}", g.bits_per_byte);
    for (x, y) in b.documents.iter().zip(&g.documents) {
        assert!(y.bits < x.bits, "{x:?} against {y:?}");
    }
    Ok(())
}

#[test]
fn checkpoint_spellings_of_the_same_model_score_the_same() -> TestResult {
    let docs = documents();
    let opts = EvalOptions::with_context(32);
    let m = toy::bert(3);
    let tied = evaluate(&m, &docs, opts)?;
    // The decoder written out (untied, equal to the embeddings) and its bias under its own name.
    let mut untied = toy::bert(3);
    let embed = tensor(&untied, "bert.embeddings.word_embeddings.weight");
    let bias = tensor(&untied, "cls.predictions.bias");
    set(&mut untied, "cls.predictions.decoder.weight", embed);
    set(&mut untied, "cls.predictions.decoder.bias", bias);
    untied.tensors.retain(|(n, _)| n != "cls.predictions.bias");
    assert_eq!(evaluate(&untied, &docs, opts)?, tied);
    // Old TensorFlow-era names for the norms.
    let mut old = toy::bert(3);
    for (name, _) in &mut old.tensors {
        if let Some(stem) = name.strip_suffix("LayerNorm.weight") {
            *name = format!("{stem}LayerNorm.gamma");
        } else if let Some(stem) = name.strip_suffix("LayerNorm.bias") {
            *name = format!("{stem}LayerNorm.beta");
        }
    }
    assert_eq!(evaluate(&old, &docs, opts)?, tied);
    // Half precision is read too (and computed in f32).
    let mut half = toy::bert(3);
    for (_, t) in &mut half.tensors {
        let values = t.view().to_f64().expect("floats");
        *t =
            Tensor::from_f64(agigit_delta::DType::BF16, t.shape().to_vec(), &values).expect("bf16");
    }
    let h = evaluate(&half, &docs, opts)?;
    assert!((h.bits_per_byte - tied.bits_per_byte).abs() < 0.05 * tied.bits_per_byte);
    Ok(())
}

#[test]
fn berts_that_cannot_be_scored_are_refused_with_what_to_do() -> TestResult {
    let docs = documents();
    let opts = EvalOptions::with_context(32);
    let with_config = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut m = toy::bert(1);
        let mut c: serde_json::Value = serde_json::from_slice(&m.config).expect("json");
        edit(&mut c);
        m.config = c.to_string().into_bytes();
        evaluate(&m, &docs, opts)
    };
    // A hostile configuration cannot make us allocate by its numbers.
    for (field, value) in [
        ("num_hidden_layers", serde_json::json!(1u64 << 40)),
        ("hidden_size", serde_json::json!(1u64 << 40)),
        ("max_position_embeddings", serde_json::json!(0)),
        ("type_vocab_size", serde_json::json!(0)),
        ("num_attention_heads", serde_json::json!(5)),
        ("layer_norm_eps", serde_json::json!(-1.0)),
        ("hidden_act", serde_json::json!("swish")),
        ("position_embedding_type", serde_json::json!("relative_key")),
    ] {
        let e = with_config(&|c| c[field] = value.clone()).expect_err(field);
        assert!(matches!(e, EvalError::Config(_)), "{field}: {e}");
    }
    // A window wider than the position table.
    let e = evaluate(&toy::bert(1), &docs, EvalOptions::with_context(512)).expect_err("wide");
    assert!(e.to_string().contains("max_position_embeddings"), "{e}");
    // A configuration bigger than its tensors, and a tensor of the wrong shape.
    let e = with_config(&|c| c["num_hidden_layers"] = 3.into()).expect_err("missing layer");
    assert!(
        matches!(&e, EvalError::Parameters(m) if m.contains("layer.2")),
        "{e}"
    );
    let e = with_config(&|c| c["intermediate_size"] = 9.into()).expect_err("shape");
    assert!(matches!(e, EvalError::Parameters(_)), "{e}");
    // An encoder without its masked-LM head.
    let mut m = toy::bert(1);
    m.tensors.retain(|(n, _)| !n.starts_with("cls."));
    let e = evaluate(&m, &docs, opts).expect_err("no head");
    assert!(e.to_string().contains("no masked-LM head"), "{e}");
    // A tokenizer without [MASK].
    let mut m = toy::bert(1);
    m.tokenizer = toy::byte_tokenizer_json();
    let e = evaluate(&m, &docs, opts).expect_err("no mask");
    assert!(
        matches!(&e, EvalError::Tokenizer(m) if m.contains("[MASK]")),
        "{e}"
    );
    // A causal-only caller is told what a bert is.
    let e = agigit_eval::ModelConfig::parse(&toy::bert_config_json(), 32).expect_err("bert");
    assert!(e.to_string().contains("masked"), "{e}");
    Ok(())
}
