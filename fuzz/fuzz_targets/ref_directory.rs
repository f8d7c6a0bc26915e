//! A private repository's opened ref directory (written by its owner or a maintainer) → a
//! directory or a typed error; one that decodes encodes to bytes that decode to it again.
#![no_main]

use agigit::RefDirectory;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(directory) = RefDirectory::decode(data) {
        let encoded = directory.encode().expect("a decoded directory encodes");
        let back = RefDirectory::decode(&encoded).expect("what is encoded decodes");
        assert_eq!(back, directory);
    }
});
