//! The demo's learning task: a noisy linear rule in a few dimensions, with each
//! client's data drawn from its own region of the feature space (non-IID).
//!
//! Every process derives the same data from the task's seed, which the problem's
//! `model.h5` carries, so the coordinator and the selectors agree on the task
//! without exchanging anything but the tree.

use serde::{Deserialize, Serialize};

use super::rng::Rng;

/// What defines the data: the true rule, the noise, and how clients differ.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskSpec {
    /// The base seed of every random draw.
    pub seed: u64,
    /// The number of features.
    pub features: usize,
    /// The standard deviation of the noise added to the true score before labelling.
    pub label_noise: f64,
    /// How far apart the clients' regions are: each client's mean is this times a
    /// standard normal vector.
    pub client_spread: f64,
    /// The fewest and the most samples a client holds.
    pub client_samples: (u64, u64),
    /// The number of held-out samples the coordinator evaluates on.
    pub held_out: usize,
}

impl TaskSpec {
    /// The demo's task, under `seed`.
    pub fn demo(seed: u64) -> Self {
        Self {
            seed,
            features: 10,
            label_noise: 0.5,
            client_spread: 1.5,
            client_samples: (60, 240),
            held_out: 4000,
        }
    }

    /// The true rule: weights and bias of the score whose sign is the label.
    fn truth(&self) -> (Vec<f64>, f64) {
        let mut rng = Rng::for_label(self.seed, "truth");
        let w = (0..self.features).map(|_| rng.normal()).collect();
        let b = 0.5 * rng.normal();
        (w, b)
    }

    /// Client `client`'s shard at selector `selector`: a number of samples between
    /// the bounds, centred on the client's own mean.
    pub fn client_shard(&self, selector: &str, client: u64) -> Dataset {
        let mut rng = Rng::for_label(self.seed, &format!("client/{selector}/{client}"));
        let (fewest, most) = self.client_samples;
        let n = fewest + rng.below(most - fewest + 1);

        // The client's region: its own mean, unit spread around it.
        let centre: Vec<f64> = (0..self.features)
            .map(|_| self.client_spread * rng.normal())
            .collect();
        self.sample(&mut rng, n as usize, |rng, j| centre[j] + rng.normal())
    }

    /// The held-out set: drawn around the origin, wide enough to cover the clients'
    /// regions taken together.
    pub fn held_out_set(&self) -> Dataset {
        let mut rng = Rng::for_label(self.seed, "held-out");
        let spread = (1.0 + self.client_spread * self.client_spread).sqrt();
        self.sample(&mut rng, self.held_out, |rng, _| spread * rng.normal())
    }

    /// Draws `n` samples, feature `j` by `feature(rng, j)`, labelled by the noisy rule.
    fn sample(
        &self,
        rng: &mut Rng,
        n: usize,
        mut feature: impl FnMut(&mut Rng, usize) -> f64,
    ) -> Dataset {
        let (w, b) = self.truth();
        let mut x = Vec::with_capacity(n * self.features);
        let mut y = Vec::with_capacity(n);

        for _ in 0..n {
            let row: Vec<f64> = (0..self.features).map(|j| feature(rng, j)).collect();
            let score = dot(&w, &row) + b + self.label_noise * rng.normal();
            x.extend_from_slice(&row);
            y.push(if score > 0.0 { 1.0 } else { 0.0 });
        }

        Dataset {
            features: self.features,
            x,
            y,
        }
    }
}

/// Samples with binary labels, row-major.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The number of features per sample.
    pub features: usize,
    /// The features, `len() * features` values.
    pub x: Vec<f64>,
    /// The labels, 0 or 1.
    pub y: Vec<f64>,
}

impl Dataset {
    /// The number of samples.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Sample `i`'s features.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.features..(i + 1) * self.features]
    }

    /// The share of samples labelled 1.
    pub fn positive_share(&self) -> f64 {
        if self.y.is_empty() {
            return 0.0;
        }
        self.y.iter().sum::<f64>() / self.y.len() as f64
    }
}

/// The dot product of two vectors of equal length.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
