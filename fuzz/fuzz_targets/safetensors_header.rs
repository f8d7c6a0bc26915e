//! Arbitrary bytes → a safetensors file (or, when they start with `{`, a checkpoint index): never
//! panics; whatever is accepted has well-formed tensors with valid names, and writing it back
//! gives a file that reads as the same tensors and metadata and re-writes to the same bytes.
#![no_main]

use agigit_delta::{CheckpointIndex, SafetensorsFile, is_valid_name, write_safetensors};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.first() == Some(&b'{') {
        if let Ok(index) = std::str::from_utf8(data).map(CheckpointIndex::from_json) {
            if let Ok(index) = index {
                assert!(index.weight_map.keys().all(|n| is_valid_name(n)));
            }
        }
        return;
    }
    let Ok(file) = SafetensorsFile::from_bytes(data.to_vec()) else {
        return;
    };
    for (name, t) in file.tensors() {
        assert!(is_valid_name(name));
        assert_eq!(t.dtype().byte_len(t.numel()), Some(t.data().len()));
    }
    let mut written = Vec::new();
    write_safetensors(&mut written, file.tensors(), file.metadata()).expect("re-write");
    let again = SafetensorsFile::from_bytes(written.clone()).expect("re-read");
    assert_eq!(again.metadata(), file.metadata());
    assert!(again.tensors().eq(file.tensors()));
    let mut twice = Vec::new();
    write_safetensors(&mut twice, again.tensors(), again.metadata()).expect("re-write");
    assert_eq!(written, twice);
});
