//! The demo's model: logistic regression, trained by minibatch SGD, stored as
//! safetensors, averaged by sample count.

use std::collections::HashMap;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};

use super::data::{Dataset, TaskSpec, dot};
use super::rng::Rng;

/// What the demo writes into `initFiles/model.h5`: a JSON description of the model
/// and of the task, which every process reads to learn the tensor shapes and the
/// data seed.
///
/// The real services keep a Keras HDF5 file there. fedota-store treats `model.h5` as
/// opaque bytes, so the demo stores JSON instead and says so in `format`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelSpec {
    /// What this file is.
    pub format: String,
    /// The model's kind.
    pub model: String,
    /// The tensors of a checkpoint: name, dtype and shape.
    pub tensors: Vec<(String, String, Vec<usize>)>,
    /// The learning task.
    pub task: TaskSpec,
}

impl ModelSpec {
    /// The description of a logistic regression over `task`'s features.
    pub fn logistic_regression(task: TaskSpec) -> Self {
        Self {
            format: "fedota-store demo model description (JSON, not HDF5)".to_owned(),
            model: "logistic-regression".to_owned(),
            tensors: vec![
                ("weight".to_owned(), "F32".to_owned(), vec![task.features]),
                ("bias".to_owned(), "F32".to_owned(), vec![1]),
            ],
            task,
        }
    }

    /// Parses the bytes of `model.h5`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes)
            .map_err(|e| format!("model.h5 is not a demo model description: {e}"))
    }

    /// The bytes to store in `model.h5`.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a model description always serializes")
    }
}

/// The samples per SGD step when none is given.
pub const DEFAULT_BATCH: usize = 16;

/// The hyperparameters of local training.
#[derive(Debug, Clone, Copy)]
pub struct Training {
    /// Passes over the client's shard per round.
    pub epochs: u32,
    /// The SGD step size.
    pub learning_rate: f64,
    /// Samples per SGD step.
    pub batch: usize,
}

impl Training {
    /// Checks that training with these settings can work: at least one epoch and one
    /// sample per step, and a finite, positive step size.
    pub fn check(&self) -> Result<(), String> {
        if self.epochs == 0 {
            return Err("--epochs must be at least 1".to_owned());
        }
        if self.batch == 0 {
            return Err("--batch must be at least 1".to_owned());
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(format!(
                "--learning-rate {}: must be a finite number above 0",
                self.learning_rate
            ));
        }
        Ok(())
    }
}

/// Logistic regression: P(y = 1 | x) = sigmoid(w·x + b).
#[derive(Debug, Clone, PartialEq)]
pub struct LogReg {
    /// One weight per feature.
    pub w: Vec<f64>,
    /// The bias.
    pub b: f64,
}

impl LogReg {
    /// All weights and the bias zero: every prediction is 0.5.
    pub fn zeros(features: usize) -> Self {
        Self {
            w: vec![0.0; features],
            b: 0.0,
        }
    }

    /// The score w·x + b.
    fn score(&self, x: &[f64]) -> f64 {
        dot(&self.w, x) + self.b
    }

    /// Mean binary cross-entropy and accuracy on `data`.
    pub fn evaluate(&self, data: &Dataset) -> (f64, f64) {
        let mut loss = 0.0;
        let mut correct = 0usize;

        for i in 0..data.len() {
            let z = self.score(data.row(i));
            let y = data.y[i];

            // log(1 + e^z) - y·z, written so that neither exponential overflows.
            loss += z.max(0.0) - y * z + (-z.abs()).exp().ln_1p();
            if (z > 0.0) == (y > 0.5) {
                correct += 1;
            }
        }

        let n = data.len().max(1) as f64;
        (loss / n, correct as f64 / n)
    }

    /// Trains on `data` by minibatch SGD, shuffling with `rng` before each epoch.
    pub fn train(&mut self, data: &Dataset, training: Training, rng: &mut Rng) {
        let mut order: Vec<usize> = (0..data.len()).collect();
        let batch = training.batch.max(1);

        for _ in 0..training.epochs {
            rng.shuffle(&mut order);

            for chunk in order.chunks(batch) {
                // The gradient of the mean loss over the batch: (p - y)·x for w,
                // (p - y) for b.
                let mut grad_w = vec![0.0; self.w.len()];
                let mut grad_b = 0.0;
                for &i in chunk {
                    let x = data.row(i);
                    let error = sigmoid(self.score(x)) - data.y[i];
                    for (g, xj) in grad_w.iter_mut().zip(x) {
                        *g += error * xj;
                    }
                    grad_b += error;
                }

                let step = training.learning_rate / chunk.len() as f64;
                for (w, g) in self.w.iter_mut().zip(&grad_w) {
                    *w -= step * g;
                }
                self.b -= step * grad_b;
            }
        }
    }

    /// The average of `models`, each weighted by its sample count (FedAvg).
    ///
    /// Returns `None` if there is nothing to average or every weight is zero. The
    /// weights are summed in `u128`, so no count of `u64` weights can overflow.
    pub fn weighted_average(models: &[(LogReg, u64)]) -> Option<LogReg> {
        let total: u128 = models.iter().map(|(_, n)| u128::from(*n)).sum();
        let first = models.first()?;
        if total == 0 {
            return None;
        }

        let mut avg = LogReg::zeros(first.0.w.len());
        for (model, n) in models {
            let share = *n as f64 / total as f64;
            for (a, w) in avg.w.iter_mut().zip(&model.w) {
                *a += share * w;
            }
            avg.b += share * model.b;
        }
        Some(avg)
    }

    /// Whether every weight and the bias is a finite number: training that diverged
    /// leaves infinities or NaN.
    pub fn is_finite(&self) -> bool {
        self.b.is_finite() && self.w.iter().all(|w| w.is_finite())
    }

    /// The model as a safetensors file: `weight` (F32, `[features]`) and `bias`
    /// (F32, `[1]`), with `metadata` in the header.
    pub fn to_safetensors(&self, metadata: HashMap<String, String>) -> Result<Vec<u8>, String> {
        let weight = f32_bytes(&self.w);
        let bias = f32_bytes(&[self.b]);
        let to_string = |e: safetensors::SafeTensorError| format!("serialize the model: {e}");

        let tensors = [
            (
                "weight",
                TensorView::new(Dtype::F32, vec![self.w.len()], &weight).map_err(to_string)?,
            ),
            (
                "bias",
                TensorView::new(Dtype::F32, vec![1], &bias).map_err(to_string)?,
            ),
        ];
        safetensors::serialize(tensors, Some(metadata)).map_err(to_string)
    }

    /// Reads a model written by [`LogReg::to_safetensors`], checking that it has
    /// `features` weights, and returns it with the header's metadata.
    pub fn from_safetensors(
        bytes: &[u8],
        features: usize,
    ) -> Result<(Self, HashMap<String, String>), String> {
        let (_, metadata) = SafeTensors::read_metadata(bytes)
            .map_err(|e| format!("not a safetensors file: {e}"))?;
        let tensors =
            SafeTensors::deserialize(bytes).map_err(|e| format!("not a safetensors file: {e}"))?;

        let w = read_f32(&tensors, "weight", features)?;
        let b = read_f32(&tensors, "bias", 1)?[0];
        let metadata = metadata.metadata().clone().unwrap_or_default();
        Ok((Self { w, b }, metadata))
    }
}

/// The logistic function.
fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// `values` as little-endian f32 bytes, the layout safetensors stores.
fn f32_bytes(values: &[f64]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|v| (*v as f32).to_le_bytes())
        .collect()
}

/// Tensor `name` as `len` f64 values, checking its dtype and shape.
fn read_f32(tensors: &SafeTensors<'_>, name: &str, len: usize) -> Result<Vec<f64>, String> {
    let view = tensors
        .tensor(name)
        .map_err(|e| format!("tensor {name:?}: {e}"))?;

    if view.dtype() != Dtype::F32 || view.shape() != [len] {
        return Err(format!(
            "tensor {name:?} is {} {:?}, expected F32 [{len}]",
            view.dtype(),
            view.shape()
        ));
    }
    Ok(view
        .data()
        .chunks_exact(4)
        .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
        .collect())
}
