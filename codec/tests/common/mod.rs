//! Shared test helpers: locating ../shared and building tiny ONNX models.
#![allow(dead_code)]
use std::path::PathBuf;

use prost::Message;
use tract_onnx::pb;

/// ../shared, or None (with a one-line notice) when it is absent.
pub fn shared() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared"));
    if p.join("models").is_dir() {
        Some(p)
    } else {
        eprintln!("skipping: ../shared not found");
        None
    }
}

pub fn tensor(name: &str, dims: &[i64], data: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        float_data: data.to_vec(),
        ..Default::default()
    }
}

pub fn node(
    op: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: format!("{op}_{}", outputs[0]),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

pub fn ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        ints: v.to_vec(),
        r#type: 7,
        ..Default::default()
    }
}

pub fn int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        i: v,
        r#type: 2,
        ..Default::default()
    }
}

pub fn string(name: &str, v: &str) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        s: v.as_bytes().to_vec(),
        r#type: 3,
        ..Default::default()
    }
}

fn value_info(name: &str, c: i64) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let dim = |v: Value| Dimension {
        value: Some(v),
        ..Default::default()
    };
    let shape = pb::TensorShapeProto {
        dim: vec![
            dim(Value::DimValue(1)),
            dim(Value::DimValue(c)),
            dim(Value::DimParam("h".into())),
            dim(Value::DimParam("w".into())),
        ],
    };
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: 1,
                shape: Some(shape),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Serialises a one-input, one-output model (input `lr`, output `sr`, opset 17).
pub fn model_bytes(nodes: Vec<pb::NodeProto>, inits: Vec<pb::TensorProto>, out_c: i64) -> Vec<u8> {
    let m = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(pb::GraphProto {
            name: "test".into(),
            node: nodes,
            initializer: inits,
            input: vec![value_info("lr", 3)],
            output: vec![value_info("sr", out_c)],
            ..Default::default()
        }),
        ..Default::default()
    };
    m.encode_to_vec()
}

/// A tiny ×2 SR net: conv 3→12 (3×3) → LeakyReLU → conv 12→12 → DepthToSpace(2, CRD).
pub fn tiny_sr(seed: u32) -> Vec<u8> {
    let w = |n: usize, k: u32| -> Vec<f32> {
        (0..n as u32)
            .map(|i| {
                (((i * 2654435761u32).wrapping_add(k * 97 + seed)) % 1000) as f32 / 4000.0 - 0.12
            })
            .collect()
    };
    let pads = ints("pads", &[1, 1, 1, 1]);
    let ks = ints("kernel_shape", &[3, 3]);
    model_bytes(
        vec![
            node(
                "Conv",
                &["lr", "w1", "b1"],
                &["c1"],
                vec![pads.clone(), ks.clone()],
            ),
            node(
                "LeakyRelu",
                &["c1"],
                &["a1"],
                vec![pb::AttributeProto {
                    name: "alpha".into(),
                    f: 0.1,
                    r#type: 1,
                    ..Default::default()
                }],
            ),
            node("Conv", &["a1", "w2", "b2"], &["c2"], vec![pads, ks]),
            node(
                "DepthToSpace",
                &["c2"],
                &["sr"],
                vec![int("blocksize", 2), string("mode", "CRD")],
            ),
        ],
        vec![
            tensor("w1", &[12, 3, 3, 3], &w(12 * 27, 1)),
            tensor("b1", &[12], &w(12, 2)),
            tensor("w2", &[12, 12, 3, 3], &w(12 * 108, 3)),
            tensor("b2", &[12], &w(12, 4)),
        ],
        3,
    )
}
