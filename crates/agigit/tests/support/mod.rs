//! Fixtures shared by the facade's integration tests.

#![allow(dead_code, reason = "each test binary uses a part")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agigit::delta::{DType, SafetensorsFile, save_safetensors, synth};

/// A temporary directory, removed on drop.
pub(crate) struct Dir(pub(crate) PathBuf);

impl Dir {
    pub(crate) fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("agigit-facade-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The tensors of [`write_model`], in order.
pub(crate) const NAMES: [&str; 3] = ["a.weight", "b.weight", "c.weight"];

/// `model.safetensors` with three f32 tensors of 256 values each, every value of tensor `i`
/// equal to `values[i]` (small integers, so sums and means are exact).
pub(crate) fn write_model(dir: &Path, values: [f32; 3]) -> Result<(), Box<dyn std::error::Error>> {
    let tensors: Vec<(&str, agigit::delta::Tensor)> = NAMES
        .iter()
        .zip(values)
        .map(|(n, v)| (*n, synth::tensor(DType::F32, &[16, 16], &[v; 256])))
        .collect();
    save_safetensors(
        dir.join("model.safetensors"),
        tensors.iter().map(|(n, t)| (*n, t.view())),
        &BTreeMap::new(),
    )?;
    Ok(())
}

/// The value of each tensor [`write_model`] wrote, after checking every value of a tensor is
/// the same.
pub(crate) fn read_model(dir: &Path) -> Result<[f32; 3], Box<dyn std::error::Error>> {
    let file = SafetensorsFile::open(dir.join("model.safetensors"))?;
    let mut out = [0f32; 3];
    for (o, name) in out.iter_mut().zip(NAMES) {
        let data = file.tensor(name).ok_or("tensor missing")?.data();
        let values: Vec<f32> = data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert!(values.iter().all(|v| *v == values[0]), "{name}: {values:?}");
        *o = values[0];
    }
    Ok(out)
}
