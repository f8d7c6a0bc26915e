//! What a commit hands an evaluation: its `config.json` → a checked configuration (causal or
//! BERT; every size bounded and consistent) or a typed error; its validation files → documents or a typed error.
//! An evaluator's loss list (a blob from the network) → losses that encode back to the same
//! bytes, or a typed error. The first byte picks the input's kind.
#![no_main]

use agigit_eval::{BertConfig, ModelConfig, add_documents, decode_losses, encode_losses};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    match pick % 4 {
        0 => {
            if let Ok(c) = ModelConfig::parse(rest, 512) {
                assert!(c.vocab_size >= 1 && c.vocab_size <= 1 << 20);
                assert!(c.layers >= 1 && c.layers <= 1024);
                assert!(c.hidden_size.is_multiple_of(c.heads));
                assert!(c.heads.is_multiple_of(c.kv_heads));
                assert!(c.sliding_window >= 1 && c.sliding_window <= 512);
                assert!(c.prefix_token.is_none_or(|t| (t as usize) < c.vocab_size));
            }
            if let Ok(c) = BertConfig::parse(rest, 512) {
                assert!(c.vocab_size >= 1 && c.vocab_size <= 1 << 20);
                assert!(c.layers >= 1 && c.layers <= 1024);
                assert!(c.hidden_size.is_multiple_of(c.heads));
                assert!(c.max_positions >= 512 && c.type_vocab_size >= 1);
                assert!(c.layer_norm_eps > 0.0 && c.layer_norm_eps.is_finite());
            }
        }
        1 => {
            let mut docs = Vec::new();
            if add_documents("d.jsonl", rest, &mut docs).is_ok() {
                assert!(docs.len() <= rest.len());
            }
        }
        2 => {
            // The count a receipt states: from the input, often far beyond what the bytes hold.
            let Some((count, list)) = rest.split_first_chunk::<2>() else {
                return;
            };
            let count = u64::from(u16::from_le_bytes(*count));
            if let Ok(losses) = decode_losses(list, count) {
                assert_eq!(losses.len() as u64, count);
                assert_eq!(encode_losses(&losses), list);
            }
        }
        _ => {
            let mut docs = Vec::new();
            if add_documents("d.txt", rest, &mut docs).is_ok() {
                assert_eq!(docs.len(), 1);
                assert_eq!(docs[0].text.as_bytes(), rest);
            }
        }
    }
});
