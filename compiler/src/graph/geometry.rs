//! The one place where `(N − F + 2P)/S + 1` is computed and judged, and
//! where the fixes for a fractional result are worked out.

use crate::spec::Rounding;

/// One axis of a sliding window over an input of size `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Axis {
    pub n: usize,
    pub kernel: usize,
    pub pad: usize,
    pub stride: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A whole number of window positions.
    Exact(usize),
    /// `(N − F + 2P)/S` leaves a remainder: `floor` positions fit and
    /// `dropped` rows/columns of the padded input are never covered.
    Fractional { floor: usize, dropped: usize },
    /// The window is larger than the padded input.
    TooSmall,
}

impl Axis {
    /// The padded extent `N + 2P` minus the window `F`, if non-negative.
    fn span(self) -> Option<usize> {
        (self.n + 2 * self.pad).checked_sub(self.kernel)
    }

    pub fn outcome(self) -> Outcome {
        match self.span() {
            None => Outcome::TooSmall,
            Some(span) if span % self.stride == 0 => Outcome::Exact(span / self.stride + 1),
            Some(span) => Outcome::Fractional { floor: span / self.stride + 1, dropped: span % self.stride },
        }
    }

    /// The output size under `rounding`, or `None` if the geometry is refused.
    pub fn output(self, rounding: Rounding) -> Option<usize> {
        match (self.outcome(), rounding) {
            (Outcome::Exact(n), _) => Some(n),
            (Outcome::Fractional { floor, .. }, Rounding::Floor) => Some(floor),
            _ => None,
        }
    }

    /// `(224 − 11 + 2·2)/4 + 1 = 55.25`
    pub fn arithmetic(self) -> String {
        let value = (self.n as f64 + 2.0 * self.pad as f64 - self.kernel as f64) / self.stride as f64 + 1.0;
        format!("({} − {} + 2·{})/{} + 1 {}", self.n, self.kernel, self.pad, self.stride, format_decimal(value))
    }

    /// Paddings up to `max` that make the size whole, nearest first.
    pub fn fixing_paddings(self, max: usize) -> Vec<(usize, usize)> {
        let mut found: Vec<(usize, usize)> = (0..=max)
            .filter_map(|pad| match (Axis { pad, ..self }).outcome() {
                Outcome::Exact(out) => Some((pad, out)),
                _ => None,
            })
            .collect();
        found.sort_by_key(|&(pad, _)| (pad.abs_diff(self.pad), pad));
        found.truncate(2);
        found
    }

    /// Strides up to the kernel size that make the size whole, nearest first.
    pub fn fixing_strides(self) -> Vec<(usize, usize)> {
        let mut found: Vec<(usize, usize)> = (1..=self.kernel.max(self.stride))
            .filter(|&s| s != self.stride)
            .filter_map(|stride| match (Axis { stride, ..self }).outcome() {
                Outcome::Exact(out) => Some((stride, out)),
                _ => None,
            })
            .collect();
        found.sort_by_key(|&(s, _)| (s.abs_diff(self.stride), s));
        found.truncate(2);
        found
    }

    /// The nearest input sizes below and above `n` that make the size whole.
    pub fn fixing_inputs(self) -> Vec<(usize, usize)> {
        let fits = |n: usize| match (Axis { n, ..self }).outcome() {
            Outcome::Exact(out) => Some((n, out)),
            _ => None,
        };
        let below = (1..self.n).rev().take(self.stride).find_map(fits);
        let above = (self.n + 1..=self.n + self.stride).find_map(fits);
        below.into_iter().chain(above).collect()
    }

    /// Why no padding can help, if that is the case: `N − F` odd with an
    /// even stride stays odd whatever `2P` adds.
    pub fn padding_cannot_fix(self) -> bool {
        self.stride.is_multiple_of(2) && (self.n + self.kernel) % 2 == 1
    }
}

/// `= 55.25`, `= 13`, `≈ 18.333`
fn format_decimal(x: f64) -> String {
    let rounded = (x * 1000.0).round() / 1000.0;
    let relation = if (rounded - x).abs() > 1e-9 { "≈" } else { "=" };
    format!("{relation} {rounded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alexnet_224_is_fractional_and_unfixable_by_padding() {
        let axis = Axis { n: 224, kernel: 11, pad: 2, stride: 4 };
        assert_eq!(axis.outcome(), Outcome::Fractional { floor: 55, dropped: 1 });
        assert_eq!(axis.arithmetic(), "(224 − 11 + 2·2)/4 + 1 = 55.25");
        assert!(axis.padding_cannot_fix());
        assert!(axis.fixing_paddings(axis.kernel + axis.stride).is_empty());
        assert_eq!(axis.fixing_inputs(), vec![(223, 55), (227, 56)]);
        assert_eq!(axis.output(Rounding::Floor), Some(55));
        assert_eq!(axis.output(Rounding::Exact), None);
    }

    #[test]
    fn exact_and_too_small() {
        assert_eq!(Axis { n: 28, kernel: 5, pad: 2, stride: 1 }.outcome(), Outcome::Exact(28));
        assert_eq!(Axis { n: 3, kernel: 5, pad: 0, stride: 1 }.outcome(), Outcome::TooSmall);
        assert_eq!(Axis { n: 3, kernel: 5, pad: 1, stride: 1 }.outcome(), Outcome::Exact(1));
    }

    #[test]
    fn every_suggested_fix_is_exact() {
        for n in 1..40 {
            for kernel in 1..8 {
                for pad in 0..4 {
                    for stride in 1..5 {
                        let axis = Axis { n, kernel, pad, stride };
                        for (p, out) in axis.fixing_paddings(axis.kernel + axis.stride) {
                            assert_eq!(Axis { pad: p, ..axis }.outcome(), Outcome::Exact(out));
                        }
                        for (s, out) in axis.fixing_strides() {
                            assert_eq!(Axis { stride: s, ..axis }.outcome(), Outcome::Exact(out));
                        }
                        for (m, out) in axis.fixing_inputs() {
                            assert_eq!(Axis { n: m, ..axis }.outcome(), Outcome::Exact(out));
                        }
                        if axis.padding_cannot_fix() {
                            assert!(axis.fixing_paddings(axis.kernel + axis.stride).is_empty(), "{axis:?}");
                        }
                    }
                }
            }
        }
    }
}
