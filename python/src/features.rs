//! `Camera.features`: the card's features by SFNC name, as a mapping.
//!
//! Values convert by the feature's type in the card's definition (`fgrab_hw::camera`):
//! Integer <-> int, Float <-> float (an int is accepted), Boolean <-> bool, Enumeration
//! <-> the entry's name (str), String <-> str. Commands have no value: `execute()` them.

use crate::camera::Camera;
use crate::errors::{IntoPy, Kind as ErrorKind};
use fgrab::FeatureValue;
use fgrab_hw::camera::{Kind, FEATURES};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyString};

/// The features of a camera (`cam.features`): `cam.features["Width"] = 640`.
#[pyclass(frozen, module = "fgrab", mapping)]
pub struct Features {
    camera: Py<Camera>,
}

impl Features {
    pub(crate) fn new(camera: Py<Camera>) -> Self {
        Self { camera }
    }
}

/// The definition's entry for `name`, or `FeatureError`.
fn lookup(name: &str) -> PyResult<&'static fgrab_hw::camera::Feature> {
    FEATURES
        .iter()
        .find(|feature| feature.name == name)
        .ok_or_else(|| ErrorKind::FeatureError.err(format!("no feature named {name:?}"), None))
}

/// `value` as the feature's type.
fn to_value(
    feature: &fgrab_hw::camera::Feature,
    value: &Bound<'_, PyAny>,
) -> PyResult<FeatureValue> {
    let wrong = || {
        ErrorKind::FeatureValueError.err(
            format!(
                "feature {}: {} is not a value of a {}",
                feature.name,
                value.repr().map_or_else(|_| "?".into(), |r| r.to_string()),
                kind_name(feature.kind)
            ),
            None,
        )
    };
    // bool is an int in Python: only Boolean features take it.
    let is_bool = value.is_instance_of::<PyBool>();
    Ok(match feature.kind {
        Kind::Integer if value.is_instance_of::<PyInt>() && !is_bool => {
            FeatureValue::Int(value.extract().map_err(|_| wrong())?)
        }
        Kind::Float
            if (value.is_instance_of::<PyFloat>() || value.is_instance_of::<PyInt>())
                && !is_bool =>
        {
            FeatureValue::Float(value.extract().map_err(|_| wrong())?)
        }
        Kind::Boolean if is_bool => FeatureValue::Bool(value.extract()?),
        Kind::Enumeration(_) if value.is_instance_of::<PyString>() => {
            FeatureValue::Enum(value.extract()?)
        }
        Kind::String if value.is_instance_of::<PyString>() => FeatureValue::Str(value.extract()?),
        Kind::Command => {
            return Err(ErrorKind::FeatureValueError.err(
                format!(
                    "feature {} is a command: use execute({:?})",
                    feature.name, feature.name
                ),
                None,
            ))
        }
        _ => return Err(wrong()),
    })
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Integer => "Integer (int)",
        Kind::Boolean => "Boolean (bool)",
        Kind::Enumeration(_) => "Enumeration (str: an entry's name)",
        Kind::Command => "Command",
        Kind::Float => "Float (float)",
        Kind::String => "String (str)",
    }
}

fn to_py<'py>(py: Python<'py>, value: FeatureValue) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        FeatureValue::Int(v) => v.into_pyobject(py)?.into_any(),
        FeatureValue::Float(v) => v.into_pyobject(py)?.into_any(),
        FeatureValue::Bool(v) => PyBool::new(py, v).to_owned().into_any(),
        FeatureValue::Enum(v) | FeatureValue::Str(v) => v.into_pyobject(py)?.into_any(),
        other => {
            return Err(ErrorKind::Error.err(format!("unsupported feature value {other:?}"), None))
        }
    })
}

#[pymethods]
impl Features {
    fn __getitem__<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let feature = lookup(name)?;
        if feature.kind == Kind::Command {
            return Err(ErrorKind::FeatureValueError.err(
                format!("feature {name} is a command and has no value: use execute({name:?})"),
                None,
            ));
        }
        let camera = self.camera.get();
        let value =
            py.detach(|| camera.with_features(|features| features.feature(name).py_err()))?;
        to_py(py, value)
    }

    fn __setitem__(&self, py: Python<'_>, name: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = to_value(lookup(name)?, value)?;
        let camera = self.camera.get();
        py.detach(|| camera.with_features(|features| features.set_feature(name, value).py_err()))
    }

    fn __delitem__(&self, _name: &str) -> PyResult<()> {
        Err(PyTypeError::new_err("features cannot be deleted"))
    }

    fn __contains__(&self, name: &Bound<'_, PyAny>) -> bool {
        name.extract::<&str>()
            .is_ok_and(|name| FEATURES.iter().any(|feature| feature.name == name))
    }

    fn __len__(&self) -> usize {
        FEATURES.len()
    }

    fn __iter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let names: Vec<&str> = FEATURES.iter().map(|feature| feature.name).collect();
        Ok(names.into_pyobject(py)?.try_iter()?.into_any().unbind())
    }

    /// Feature names (every feature, commands included).
    fn keys(&self) -> Vec<&'static str> {
        FEATURES.iter().map(|feature| feature.name).collect()
    }

    /// The GenICam type of feature `name`: `Integer`, `Float`, `Boolean`, `Enumeration`,
    /// `String` or `Command`.
    fn kind(&self, name: &str) -> PyResult<&'static str> {
        Ok(kind_name(lookup(name)?.kind)
            .split(' ')
            .next()
            .unwrap_or(""))
    }

    /// The entries of enumeration `name`.
    fn entries(&self, name: &str) -> PyResult<Vec<&'static str>> {
        match lookup(name)?.kind {
            Kind::Enumeration(entries) => Ok(entries.iter().map(|(entry, _)| *entry).collect()),
            _ => {
                Err(ErrorKind::FeatureValueError.err(format!("{name} is not an enumeration"), None))
            }
        }
    }

    fn __repr__(&self) -> String {
        format!("<fgrab.Features of {}>", self.camera.get().path_str())
    }
}
