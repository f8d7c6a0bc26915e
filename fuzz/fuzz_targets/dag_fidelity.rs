//! A commit's `fidelity` header (from anyone's commit) → a statement, or a typed error; a
//! statement that decodes has exactly those bytes as its encoding.
#![no_main]

use agigit_dag::fidelity::Fidelity;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(statement) = Fidelity::decode(data) {
        assert_eq!(statement.encode(), data);
        let worst = statement.worst();
        assert!(worst.is_finite() && worst >= 0.0);
        let mean = statement.weighted_mean();
        assert!(mean.is_finite() && mean <= worst);
    }
});
