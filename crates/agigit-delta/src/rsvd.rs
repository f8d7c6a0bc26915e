//! Randomized SVD (Halko, Martinsson and Tropp, 2011, algorithms 4.4 and 5.1): the large
//! products are candle matmuls on the caller's [`Device`]; the small dense steps — Householder QR
//! of the `m × l` sketch and the SVD of the `l × n` projection — run in `faer` on the CPU in
//! `f64`.
//!
//! The Gaussian test matrix comes from ChaCha8 seeded by the caller, generated on the CPU, so the
//! same seed gives the same sketch on every device.

use candle_core::{Device, Tensor as CTensor};
use faer::Mat;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// Why [`randomized_svd`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RsvdError {
    /// The values are not a `rows × cols` matrix.
    #[error("{len} values for a {rows} × {cols} matrix")]
    Shape {
        /// How many values there are.
        len: usize,
        /// Rows asked for.
        rows: usize,
        /// Columns asked for.
        cols: usize,
    },
    /// A candle operation failed (device out of memory, CUDA error, …).
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// The SVD of the small projection did not converge.
    #[error("SVD of the {rows} × {cols} projection: {reason}")]
    Linalg {
        /// Rows of the projection.
        rows: usize,
        /// Columns of the projection.
        cols: usize,
        /// What faer said.
        reason: String,
    },
}

/// Parameters of [`randomized_svd`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RsvdParams {
    /// Sketch width `l`: singular triplets computed (rank wanted + oversampling). Clamped to
    /// `min(rows, cols)`.
    pub sketch: usize,
    /// Power (subspace) iterations `q`; 1–2 sharpen a slowly decaying spectrum.
    pub power_iters: usize,
    /// Seed of the Gaussian test matrix.
    pub seed: u64,
}

/// A truncated SVD `A ≈ U · diag(s) · Vᵀ`, singular values in non-increasing order.
#[derive(Clone, Debug, PartialEq)]
pub struct Svd {
    rows: usize,
    cols: usize,
    /// `k` left singular vectors of length `rows`, one after another.
    u: Vec<f32>,
    s: Vec<f64>,
    /// `k` right singular vectors of length `cols`, one after another.
    v: Vec<f32>,
}

impl Svd {
    /// The number of singular triplets.
    pub fn len(&self) -> usize {
        self.s.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.s.is_empty()
    }

    /// Singular values, non-increasing.
    pub fn singular_values(&self) -> &[f64] {
        &self.s
    }

    /// The `i`-th left singular vector (length `rows`).
    pub fn u(&self, i: usize) -> &[f32] {
        &self.u[i * self.rows..(i + 1) * self.rows]
    }

    /// The `i`-th right singular vector (length `cols`).
    pub fn v(&self, i: usize) -> &[f32] {
        &self.v[i * self.cols..(i + 1) * self.cols]
    }

    /// Rows of the factored matrix.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns of the factored matrix.
    pub fn cols(&self) -> usize {
        self.cols
    }
}

/// Row-major `f32` on the CPU into a `faer` matrix.
fn to_faer(values: &[f32], rows: usize, cols: usize) -> Mat<f64> {
    Mat::from_fn(rows, cols, |i, j| f64::from(values[i * cols + j]))
}

#[allow(clippy::cast_possible_truncation, reason = "factors are kept in f32")]
fn from_faer(m: &Mat<f64>, device: &Device) -> Result<CTensor, RsvdError> {
    let (rows, cols) = (m.nrows(), m.ncols());
    let mut out = Vec::with_capacity(rows * cols);
    for i in 0..rows {
        for j in 0..cols {
            out.push(m[(i, j)] as f32);
        }
    }
    Ok(CTensor::from_vec(out, (rows, cols), device)?)
}

fn to_host(t: &CTensor) -> Result<(Vec<f32>, usize, usize), RsvdError> {
    let (rows, cols) = t.dims2()?;
    Ok((t.flatten_all()?.to_vec1::<f32>()?, rows, cols))
}

/// An orthonormal basis (Householder QR in `faer`) of the columns of `y`.
fn orthonormalize(y: &CTensor) -> Result<Mat<f64>, RsvdError> {
    let (values, rows, cols) = to_host(y)?;
    Ok(to_faer(&values, rows, cols).qr().compute_thin_Q())
}

/// A truncated SVD of the row-major `rows × cols` matrix `a` with `params.sketch` triplets.
pub fn randomized_svd(
    a: &[f32],
    rows: usize,
    cols: usize,
    params: RsvdParams,
    device: &Device,
) -> Result<Svd, RsvdError> {
    if a.len() != rows.saturating_mul(cols) {
        return Err(RsvdError::Shape {
            len: a.len(),
            rows,
            cols,
        });
    }
    let l = params.sketch.min(rows).min(cols);
    if l == 0 {
        return Ok(Svd {
            rows,
            cols,
            u: Vec::new(),
            s: Vec::new(),
            v: Vec::new(),
        });
    }
    let a_dev = CTensor::from_slice(a, (rows, cols), device)?;
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let omega: Vec<f32> = (0..cols * l)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let omega = CTensor::from_vec(omega, (cols, l), device)?;

    // Range finder with power iterations, re-orthonormalizing after every product (HMT 4.4).
    let mut y = a_dev.matmul(&omega)?;
    let a_t = a_dev.t()?;
    for _ in 0..params.power_iters {
        let q = from_faer(&orthonormalize(&y)?, device)?;
        let z = a_t.matmul(&q)?;
        let qz = from_faer(&orthonormalize(&z)?, device)?;
        y = a_dev.matmul(&qz)?;
    }
    let q = orthonormalize(&y)?;
    // B = Qᵀ A (l × n), on the device; its SVD on the host.
    let q_dev = from_faer(&q, device)?;
    let b = q_dev.t()?.matmul(&a_dev)?;
    let (bv, br, bc) = to_host(&b)?;
    let svd = to_faer(&bv, br, bc)
        .thin_svd()
        .map_err(|e| RsvdError::Linalg {
            rows: br,
            cols: bc,
            reason: format!("{e:?}"),
        })?;
    // U = Q · U_B.
    let u_full = &q * svd.U();
    let k = svd.S().column_vector().nrows().min(l);
    let s: Vec<f64> = (0..k).map(|i| svd.S()[i]).collect();
    #[allow(clippy::cast_possible_truncation, reason = "factors are kept in f32")]
    let u: Vec<f32> = (0..k)
        .flat_map(|t| (0..rows).map(move |i| (t, i)))
        .map(|(t, i)| u_full[(i, t)] as f32)
        .collect();
    let v_b = svd.V();
    #[allow(clippy::cast_possible_truncation, reason = "factors are kept in f32")]
    let v: Vec<f32> = (0..k)
        .flat_map(|t| (0..cols).map(move |j| (t, j)))
        .map(|(t, j)| v_b[(j, t)] as f32)
        .collect();
    device.synchronize()?;
    Ok(Svd {
        rows,
        cols,
        u,
        s,
        v,
    })
}
