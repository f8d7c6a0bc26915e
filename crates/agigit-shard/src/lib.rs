#![doc = include_str!("../README.md")]

mod code;
pub mod conformance;
mod durability;
mod leopard;
mod locate;
mod manifest;
mod novelpoly;
mod placement;
mod stream;
mod transfer;

pub use code::{CodecKind, CodecSpec, ErasureCode, MAX_SHARDS, ShardError, codec_for, slots};
pub use durability::{Durability, EXACT_ODDS_SERVERS, Holdings, RebuildOdds, ShardMap};
pub use leopard::{LEOPARD_STRIPE, Leopard};
pub use locate::{Locator, MAX_PERIOD, Rank};
pub use manifest::{
    MANIFEST_MAGIC, MANIFEST_VERSION, MANIFEST_VERSION_ANNEX, MAX_ANNEX_LEN, MAX_SEGMENT_SIZE,
    ManifestError, ShardManifest,
};
pub use novelpoly::NovelPoly;
pub use placement::{Placement, PlacementError, plan_shards};
pub use stream::{
    ShardSource, StreamError, StreamOptions, decode_stream, encode_stream, fetch_segment,
};
pub use transfer::{EncodedSegment, Offered, SegmentEncoder, SegmentRebuilder};

erasure_code_conformance!(novelpoly_4_of_8, NovelPoly::new(4, 8));
erasure_code_conformance!(novelpoly_10_of_30, NovelPoly::new(10, 30));
erasure_code_conformance!(novelpoly_1_of_2, NovelPoly::new(1, 2));
erasure_code_conformance!(leopard_4_of_7, Leopard::new(4, 7));
erasure_code_conformance!(leopard_10_of_30, Leopard::new(10, 30));
erasure_code_conformance!(leopard_1_of_2, Leopard::new(1, 2));
erasure_code_conformance!(leopard_16_of_32, Leopard::new(16, 32));
