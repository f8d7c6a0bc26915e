//! A commit's `training` header (from anyone's commit) → a record, or a typed error; a record
//! that decodes has exactly those bytes as its encoding.
#![no_main]

use agigit::record::TrainingRecord;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = TrainingRecord::decode(data) {
        assert_eq!(record.encode(), data);
        let _ = record.summary();
    }
    // A user's file: any JSON spelling, checked the same way, stored in the one form.
    if let Ok(record) = TrainingRecord::from_json(data) {
        let stored = record.encode();
        let back = TrainingRecord::decode(&stored).expect("what is stored reads back");
        assert_eq!(back.encode(), stored);
    }
});
