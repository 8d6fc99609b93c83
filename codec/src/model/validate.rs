//! Load-time validation of an ONNX model, before anything is allocated from it
//! or handed to tract: every constant finite, shapes within sane limits, exactly
//! one image input and one image output of rank 4. Each error is one line that
//! names the tensor, node or field and what was expected.
//!
//! Both loaders run it: the importer (`model::import`, integer modes) and the
//! FP32 reference (`model::reference`, tract), so a NaN weight is refused in
//! every mode instead of producing a silently wrong image.
//!
//! The limits are far above what a real-time SR network uses (the bundled models
//! and IMDN have ≤ 64 channels and 1×1/3×3 kernels; RFDN's pool is 7×7) and
//! below what would allocate gigabytes: a feature map of 1024 channels at
//! 1920×1080 is already 8 GiB in f32, so channel counts past `MAX_CHANNELS` are
//! refused before the first frame; one constant is at most `MAX_TENSOR_VALUES`
//! (64 MiB as f32), checked before its data is converted.
//!
//! Panics of dependencies are caught at the codec boundary by [`no_panic`].
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto,
};
use tract_onnx::prelude::Framework;

use crate::error::{Error, Result};

/// Most channels of any conv input or output (SR networks: 12–256).
pub const MAX_CHANNELS: usize = 1024;
/// Largest conv or pooling kernel side (SR networks: 1, 3, 5; RFDN's pool: 7).
pub const MAX_KERNEL: usize = 15;
/// Largest dilation and stride.
pub const MAX_DILATION: usize = 16;
/// Most values in one constant tensor: 16 Mi (64 MiB as f32).
pub const MAX_TENSOR_VALUES: usize = 1 << 24;
/// Most nodes in a graph (IMDN: ~300).
pub const MAX_NODES: usize = 20_000;

/// The phrase that marks a caught panic in an error message (tests and the
/// fuzz harnesses look for it: a caught panic is still a bug to fix).
pub const PANIC_MARK: &str = "internal panic";

/// Runs `f`, turning a panic (ours or a dependency's, e.g. tract's) into an
/// error naming the model and what was being done. The release profile unwinds
/// (no `panic = "abort"`), so this keeps the CLI and the streaming thread alive.
pub fn no_panic<T>(path: &Path, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(Error::model(path, format!("{what}: {PANIC_MARK}: {msg}")))
        }
    }
}

/// Parses a model held in memory as ONNX (no tract model is built) and
/// validates it; errors name `model.label`.
pub fn check_bytes(model: &super::ModelBytes) -> Result<()> {
    let proto = parse(model)?;
    check(&model.label, &proto)
}

/// Reads the ONNX protobuf of a model held in memory.
pub fn parse(model: &super::ModelBytes) -> Result<ModelProto> {
    let path = model.label.as_path();
    no_panic(path, "reading the ONNX protobuf", || {
        tract_onnx::onnx()
            .proto_model_for_read(&mut &model.bytes[..])
            .map_err(|e| Error::model(path, format!("not a readable ONNX model: {e}")))
    })
}

/// Validates a parsed model: see the module documentation.
pub fn check(path: &Path, proto: &ModelProto) -> Result<()> {
    let err = |msg: String| Error::model(path, msg);
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| err("ONNX file has no graph".into()))?;
    if graph.node.len() > MAX_NODES {
        return Err(err(format!(
            "graph has {} nodes (expected at most {MAX_NODES})",
            graph.node.len()
        )));
    }
    for t in &graph.initializer {
        check_tensor(t).map_err(|m| err(format!("initializer '{}': {m}", t.name)))?;
    }
    for n in &graph.node {
        for a in &n.attribute {
            if let Some(t) = &a.t {
                check_tensor(t).map_err(|m| {
                    err(format!(
                        "node '{}' ({}) attribute '{}': {m}",
                        n.name, n.op_type, a.name
                    ))
                })?;
            }
            if a.f.is_nan() || a.f.is_infinite() || a.floats.iter().any(|f| !f.is_finite()) {
                return Err(err(format!(
                    "node '{}' ({}) attribute '{}' is not finite (expected a finite number)",
                    n.name, n.op_type, a.name
                )));
            }
        }
        check_node(graph, n).map_err(|m| err(format!("node '{}' ({}): {m}", n.name, n.op_type)))?;
    }
    check_io(graph).map_err(err)
}

/// Exactly one image input (not an initializer) and one image output, both rank 4
/// with 3 channels where the file says, and names that the graph defines.
fn check_io(graph: &GraphProto) -> std::result::Result<(), String> {
    let inits: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !inits.contains(i.name.as_str()))
        .collect();
    if inputs.len() != 1 {
        return Err(format!(
            "has {} image inputs (expected exactly one, NCHW RGB or luma)",
            inputs.len()
        ));
    }
    if graph.output.len() != 1 {
        return Err(format!(
            "has {} outputs (expected exactly one image)",
            graph.output.len()
        ));
    }
    for (what, v) in [("input", inputs[0]), ("output", &graph.output[0])] {
        if v.name.is_empty() {
            return Err(format!(
                "the {what} has an empty name (expected a tensor name)"
            ));
        }
        if let Some(dims) = dims_of(v) {
            if dims.len() != 4 {
                return Err(format!(
                    "{what} '{}' has rank {} (expected 4: 1×3×H×W)",
                    v.name,
                    dims.len()
                ));
            }
            // RGB, or luma (FSRCNN, ESPCN); the output has the input's channels.
            let input_c = dims_of(inputs[0]).and_then(|d| d.get(1).copied().flatten());
            let expected = match (what, input_c) {
                ("output", Some(ic @ (1 | 3))) => vec![ic],
                _ => vec![3, 1],
            };
            if let Some(c) = dims[1]
                && !expected.contains(&c)
            {
                return Err(format!(
                    "{what} '{}' has {c} channels (expected {})",
                    v.name,
                    if expected == [1] {
                        "1, like the input: luma"
                    } else if expected == [3] {
                        "3, like the input: RGB"
                    } else {
                        "3: RGB, or 1: luma"
                    }
                ));
            }
        }
    }
    let out = &graph.output[0].name;
    let produced = graph.node.iter().any(|n| n.output.iter().any(|o| o == out));
    if !produced && *out != inputs[0].name {
        return Err(format!(
            "output '{out}' is produced by no node (expected the name of a node output)"
        ));
    }
    Ok(())
}

/// The static dims of a value (None: unknown), or None when the file gives no shape.
pub(crate) fn dims_of(v: &ValueInfoProto) -> Option<Vec<Option<i64>>> {
    use tract_onnx::pb::tensor_shape_proto::dimension::Value;
    use tract_onnx::pb::type_proto::Value as Tv;
    let Some(Tv::TensorType(t)) = v.r#type.as_ref()?.value.as_ref() else {
        return None;
    };
    let shape = t.shape.as_ref()?;
    Some(
        shape
            .dim
            .iter()
            .map(|d| match d.value {
                Some(Value::DimValue(x)) => Some(x),
                _ => None,
            })
            .collect(),
    )
}

/// Dims within limits, data finite and of the declared size.
fn check_tensor(t: &TensorProto) -> std::result::Result<(), String> {
    let mut n: usize = 1;
    for &d in &t.dims {
        if d < 0 {
            return Err(format!("negative dimension {d} in {:?}", t.dims));
        }
        n = n
            .checked_mul(d as usize)
            .filter(|&n| n <= MAX_TENSOR_VALUES)
            .ok_or_else(|| {
                format!(
                    "dims {:?} hold more than {MAX_TENSOR_VALUES} values (limit of a constant)",
                    t.dims
                )
            })?;
    }
    let raw = &t.raw_data;
    let bad = |i: usize, v: f64| {
        Err(format!(
            "value {i} is {v} (expected finite weights and biases)"
        ))
    };
    match t.data_type {
        // float
        1 => {
            let it: Box<dyn Iterator<Item = f32>> = if raw.is_empty() {
                Box::new(t.float_data.iter().copied())
            } else {
                Box::new(
                    raw.chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                )
            };
            for (i, v) in it.enumerate() {
                if !v.is_finite() {
                    return bad(i, f64::from(v));
                }
            }
        }
        // double
        11 => {
            let it: Box<dyn Iterator<Item = f64>> = if raw.is_empty() {
                Box::new(t.double_data.iter().copied())
            } else {
                Box::new(
                    raw.chunks_exact(8)
                        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes"))),
                )
            };
            for (i, v) in it.enumerate() {
                if !v.is_finite() {
                    return bad(i, v);
                }
            }
        }
        // float16: exponent all ones is inf/NaN
        10 => {
            let halves: Vec<u16> = if raw.is_empty() {
                t.int32_data.iter().map(|&x| x as u16).collect()
            } else {
                raw.chunks_exact(2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]))
                    .collect()
            };
            if let Some(i) = halves.iter().position(|h| h & 0x7c00 == 0x7c00) {
                return Err(format!(
                    "value {i} is not finite (expected finite weights and biases)"
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

fn ints(a: &AttributeProto) -> Vec<i64> {
    if a.ints.is_empty() {
        vec![a.i]
    } else {
        a.ints.clone()
    }
}

/// Shape attributes of convs and pools within the limits, and conv weights of
/// rank 4 with sane channel counts.
fn check_node(graph: &GraphProto, n: &NodeProto) -> std::result::Result<(), String> {
    let conv_like = matches!(
        n.op_type.as_str(),
        "Conv" | "ConvTranspose" | "MaxPool" | "AveragePool" | "LpPool"
    );
    if !conv_like {
        return Ok(());
    }
    for a in &n.attribute {
        let v = ints(a);
        let limit = match a.name.as_str() {
            "kernel_shape" => (1, MAX_KERNEL as i64),
            "strides" | "dilations" => (1, MAX_DILATION as i64),
            "pads" => (0, (MAX_KERNEL * MAX_DILATION) as i64),
            "group" => (1, MAX_CHANNELS as i64),
            _ => continue,
        };
        if let Some(x) = v.iter().find(|&&x| x < limit.0 || x > limit.1) {
            return Err(format!(
                "attribute '{}' = {x} (expected {}..={})",
                a.name, limit.0, limit.1
            ));
        }
    }
    if n.op_type == "Conv" || n.op_type == "ConvTranspose" {
        let Some(w) = n.input.get(1) else {
            return Err("no weight input (expected X, W[, B])".into());
        };
        if let Some(t) = graph.initializer.iter().find(|t| &t.name == w) {
            if t.dims.len() != 4 {
                return Err(format!(
                    "weights '{w}' have rank {} (expected 4: out × in × kh × kw)",
                    t.dims.len()
                ));
            }
            let (o, i, kh, kw) = (t.dims[0], t.dims[1], t.dims[2], t.dims[3]);
            for (what, v, max) in [
                ("output channels", o, MAX_CHANNELS),
                ("input channels", i, MAX_CHANNELS),
                ("kernel height", kh, MAX_KERNEL),
                ("kernel width", kw, MAX_KERNEL),
            ] {
                if v < 1 || v > max as i64 {
                    return Err(format!(
                        "weights '{w}' have {v} {what} (expected 1..={max})"
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_panic_names_the_model_and_the_step() {
        let e = no_panic::<()>(Path::new("m.onnx"), "running", || panic!("boom"))
            .unwrap_err()
            .to_string();
        assert_eq!(e, format!("model m.onnx: running: {PANIC_MARK}: boom"));
        let ok = no_panic(Path::new("m.onnx"), "running", || Ok(7)).unwrap();
        assert_eq!(ok, 7);
    }

    #[test]
    fn tensors_with_non_finite_values_or_huge_dims_are_refused() {
        let t = |dims: Vec<i64>, data: Vec<f32>| TensorProto {
            name: "w".into(),
            dims,
            data_type: 1,
            float_data: data,
            ..Default::default()
        };
        assert!(check_tensor(&t(vec![2], vec![1.0, 2.0])).is_ok());
        let e = check_tensor(&t(vec![3], vec![1.0, f32::NAN, 2.0])).unwrap_err();
        assert!(e.contains("value 1 is NaN"), "{e}");
        let e = check_tensor(&t(vec![1], vec![f32::NEG_INFINITY])).unwrap_err();
        assert!(e.contains("value 0 is -inf"), "{e}");
        let e = check_tensor(&t(vec![1 << 20, 1 << 20], vec![])).unwrap_err();
        assert!(e.contains("more than"), "{e}");
        let e = check_tensor(&t(vec![i64::MAX, i64::MAX], vec![])).unwrap_err();
        assert!(e.contains("more than"), "{e}");
        assert!(check_tensor(&t(vec![-1], vec![])).is_err());
    }
}
