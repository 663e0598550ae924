//! `cnn bench`'s report as text.

use std::fmt::Write as _;
use std::time::Duration;

use super::figures::BenchReport;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl BenchReport {
    /// Images per second of training.
    pub fn images_per_second(&self) -> f64 {
        self.batch as f64 / self.step_median.as_secs_f64()
    }

    /// Projected seconds of training per 60,000-image epoch (median step).
    pub fn epoch_seconds(&self) -> f64 {
        60_000.0 / self.images_per_second()
    }

    /// Achieved GFLOP/s of training (median step).
    pub fn gflops(&self) -> f64 {
        self.train_flops_per_image as f64 * self.images_per_second() / 1e9
    }

    /// The report as text: a per-layer table, then the totals.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "config {}, batch {}, {} thread{}, {} timed steps, {} data",
            self.config,
            self.batch,
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            self.steps,
            if self.real_data { "real" } else { "random" }
        );
        self.write_layers(&mut s);
        self.write_totals(&mut s);
        s
    }

    /// The per-layer table, the whole batch through one network.
    fn write_layers(&self, s: &mut String) {
        let _ = writeln!(
            *s,
            "\nper layer, the whole batch through one network:\n{:<10} {:<13} {:>10} {:>10} {:>10} {:>9}",
            "layer", "kind", "fwd ms", "bwd ms", "MFLOP/img", "fwd GF/s"
        );
        let (mut f, mut b) = (Duration::ZERO, Duration::ZERO);
        for l in &self.layers {
            f += l.forward;
            b += l.backward;
            let gf = if l.forward_flops > 0 && !l.forward.is_zero() {
                format!(
                    "{:.1}",
                    l.forward_flops as f64 * self.batch as f64 / l.forward.as_secs_f64() / 1e9
                )
            } else {
                String::new()
            };
            if l.fused {
                let _ = writeln!(
                    *s,
                    "{:<10} {:<13} {:>21}",
                    l.name, l.kind, "(fused, in the layer above)"
                );
                continue;
            }
            let _ = writeln!(
                *s,
                "{:<10} {:<13} {:>10.3} {:>10.3} {:>10.3} {:>9}",
                l.name,
                l.kind,
                ms(l.forward),
                ms(l.backward),
                l.forward_flops as f64 / 1e6,
                gf
            );
        }
        let _ = writeln!(
            *s,
            "{:<10} {:<13} {:>10.3} {:>10.3}",
            "layers",
            "",
            ms(f),
            ms(b)
        );
    }

    /// The training step, the evaluation and the memory.
    fn write_totals(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "data {:.3} ms, loss {:.3} ms, optimizer {:.3} ms per step",
            ms(self.data),
            ms(self.loss),
            ms(self.optimizer)
        );
        let _ = writeln!(
            s,
            "\ntraining step (micro-batches of {}, as in cnn train): median {:.3} ms (min {:.3}, mean {:.3})",
            self.micro_batch,
            ms(self.step_median),
            ms(self.step_min),
            ms(self.step_mean)
        );
        let _ = writeln!(
            s,
            "training: {:.0} images/s, {:.2} s per 60,000-image epoch, {:.2} GFLOP/s",
            self.images_per_second(),
            self.epoch_seconds(),
            self.gflops()
        );
        let (isa, peak) = self.fma_peak;
        let _ = writeln!(
            s,
            "  {:.0}% of the FMA peak: {:.1} GFLOP/s on {} thread{} ({isa}, FMAs alone)",
            100.0 * self.gflops() * 1e9 / peak.max(1.0),
            peak / 1e9,
            self.threads,
            if self.threads == 1 { "" } else { "s" },
        );
        let _ = writeln!(
            s,
            "  (FLOPs: {:.3} MFLOP per image = forward + weight gradients + input gradients but the first layer's; {:.1} GFLOP per epoch)",
            self.train_flops_per_image as f64 / 1e6,
            self.train_flops_per_image as f64 * 60_000.0 / 1e9
        );
        let _ = writeln!(
            s,
            "evaluation: {} images in {:.3} s ({:.0} images/s)",
            self.eval_images,
            self.eval.as_secs_f64(),
            self.eval_images as f64 / self.eval.as_secs_f64().max(1e-12)
        );
        match self.peak_rss {
            Some(b) => {
                let _ = writeln!(s, "peak resident memory: {:.1} MB", b as f64 / 1e6);
            }
            None => {
                let _ = writeln!(s, "peak resident memory: unknown (no /proc/self/status)");
            }
        }
    }
}
