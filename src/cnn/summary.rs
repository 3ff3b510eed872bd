//! The layer table of `torchsummary.summary(model, (1, 28, 28))`, reproduced character for
//! character: one row per leaf module in call order (ReLU is functional in the source network,
//! so it has no row), the parameter totals, and torchsummary's size estimates.
//!
//! The rows are built from the layer types themselves ([`Conv::PARAMS`],
//! [`BatchNorm::PARAMS`], [`Linear::PARAMS`]) and their shape arithmetic, and their sum is
//! checked against [`PARAM_COUNT`], so the table cannot drift from the model.
use super::batchnorm::BatchNorm;
use super::conv::Conv;
use super::linear::Linear;
use super::params::PARAM_COUNT;

/// One row of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Module type as PyTorch names it (`Conv2d`, `BatchNorm2d`, ...).
    pub kind: &'static str,
    /// Output shape without the batch dimension, e.g. `[16, 26, 26]`.
    pub shape: Vec<usize>,
    /// Trainable parameters of the module.
    pub params: usize,
    /// Side of the window the module slides over its input (1 for element-wise modules; the
    /// linear layer's input is `1×1`).
    pub kernel: usize,
    /// Step of that window (1 for element-wise modules).
    pub stride: usize,
}

impl super::receptive::Window for Row {
    fn kernel(&self) -> usize {
        self.kernel
    }
    fn stride(&self) -> usize {
        self.stride
    }
}

/// Shape `[C, H, W]` flowing through the table as it is built.
struct Builder {
    rows: Vec<Row>,
    c: usize,
    h: usize,
    w: usize,
}

impl Builder {
    fn push(&mut self, kind: &'static str, shape: Vec<usize>, params: usize, window: usize) {
        self.rows.push(Row {
            kind,
            shape,
            params,
            kernel: window,
            stride: if kind.ends_with("Pool2d") { window } else { 1 },
        });
    }
    fn conv<const CIN: usize, const COUT: usize, const K: usize, const KK: usize>(&mut self) {
        assert_eq!(self.c, CIN, "summary: channel mismatch");
        self.c = COUT;
        self.h = self.h + 1 - K;
        self.w = self.w + 1 - K;
        let params = Conv::<f32, CIN, COUT, K, KK>::PARAMS;
        self.push("Conv2d", vec![self.c, self.h, self.w], params, K);
    }
    fn bn<const C: usize>(&mut self) {
        assert_eq!(self.c, C, "summary: channel mismatch");
        let params = BatchNorm::<f32, C>::PARAMS;
        self.push("BatchNorm2d", vec![self.c, self.h, self.w], params, 1);
    }
    fn same(&mut self, kind: &'static str) {
        self.push(kind, vec![self.c, self.h, self.w], 0, 1);
    }
    /// A block of the network: convolution, BatchNorm and dropout (ReLU has no row).
    fn block<const CIN: usize, const COUT: usize, const K: usize, const KK: usize>(&mut self) {
        self.conv::<CIN, COUT, K, KK>();
        self.bn::<COUT>();
        self.same("Dropout");
    }
    /// A 2×2 pool with stride 2.
    fn pool(&mut self, kind: &'static str) {
        self.h /= 2;
        self.w /= 2;
        self.push(kind, vec![self.c, self.h, self.w], 0, 2);
    }
    fn linear<const IN: usize, const OUT: usize>(&mut self) {
        assert_eq!(self.c * self.h * self.w, IN, "summary: flatten mismatch");
        // Every output reads the whole input, which is 1×1 here (the average pool's output).
        let window = self.h.max(self.w);
        self.push("Linear", vec![OUT], Linear::<f32, IN, OUT>::PARAMS, window);
    }
}

/// The rows in forward (hook) order, for a `1×28×28` input.
pub fn rows() -> Vec<Row> {
    let mut b = Builder {
        rows: Vec::new(),
        c: 1,
        h: 28,
        w: 28,
    };
    // The type parameters are those of `Params`' fields.
    b.block::<1, 16, 3, 9>();
    b.block::<16, 32, 3, 144>();
    b.conv::<32, 8, 1, 32>();
    b.pool("MaxPool2d");
    b.block::<8, 16, 3, 72>();
    b.block::<16, 32, 3, 144>();
    b.conv::<32, 16, 1, 32>();
    b.pool("MaxPool2d");
    b.conv::<16, 32, 3, 144>();
    b.pool("AvgPool2d");
    b.linear::<32, 10>();
    let total: usize = b.rows.iter().map(|r| r.params).sum();
    assert_eq!(total, PARAM_COUNT, "summary rows disagree with PARAM_COUNT");
    b.rows
}

/// `12345` → `12,345` (Python's `"{:,}"`).
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// The whole table, as torchsummary prints it (ending in a newline).
pub fn summary() -> String {
    let dashes = "-".repeat(64);
    let equals = "=".repeat(64);
    let mut s = String::new();
    s.push_str(&dashes);
    s.push('\n');
    s.push_str(&format!(
        "{:>20}  {:>25} {:>15}\n",
        "Layer (type)", "Output Shape", "Param #"
    ));
    s.push_str(&equals);
    s.push('\n');
    let rows = rows();
    // torchsummary multiplies the -1 batch dimension in, then takes abs: Σ elements.
    let mut total_output = 0usize;
    for (i, r) in rows.iter().enumerate() {
        let dims: Vec<String> = std::iter::once("-1".to_string())
            .chain(r.shape.iter().map(|d| d.to_string()))
            .collect();
        let shape = format!("[{}]", dims.join(", "));
        s.push_str(&format!(
            "{:>20}  {:>25} {:>15}\n",
            format!("{}-{}", r.kind, i + 1),
            shape,
            thousands(r.params)
        ));
        total_output += r.shape.iter().product::<usize>();
    }
    let total_params: usize = rows.iter().map(|r| r.params).sum();
    let mb = |bytes: f64| bytes / (1024.0 * 1024.0);
    let input_mb = mb((28 * 28 * 4) as f64);
    let output_mb = mb(2.0 * total_output as f64 * 4.0);
    let params_mb = mb(total_params as f64 * 4.0);
    s.push_str(&equals);
    s.push('\n');
    s.push_str(&format!("Total params: {}\n", thousands(total_params)));
    s.push_str(&format!("Trainable params: {}\n", thousands(total_params)));
    s.push_str("Non-trainable params: 0\n");
    s.push_str(&dashes);
    s.push('\n');
    s.push_str(&format!("Input size (MB): {input_mb:.2}\n"));
    s.push_str(&format!(
        "Forward/backward pass size (MB): {output_mb:.2}\n"
    ));
    s.push_str(&format!("Params size (MB): {params_mb:.2}\n"));
    s.push_str(&format!(
        "Estimated Total Size (MB): {:.2}\n",
        input_mb + output_mb + params_mb
    ));
    s.push_str(&dashes);
    s.push('\n');
    s
}
