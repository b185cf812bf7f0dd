//! `fgrab::Error` as Python exceptions: the classes are defined in `fgrab/errors.py` (so
//! that each can derive from the matching built-in exception too) and looked up here once.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// The classes of `fgrab.errors`, in the order of [`Kind`].
static CLASSES: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

/// One exception class of `fgrab.errors`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    Error,
    OpenError,
    RingError,
    CommandError,
    BusyError,
    GeometryError,
    AllocationError,
    MemlockLimit,
    Timeout,
    Canceled,
    Stopped,
    StreamEnded,
    CardGone,
    InUse,
    AbiMismatch,
    FeatureError,
    FeatureValueError,
    FrameReleased,
    NoCamera,
}

impl Kind {
    const ALL: [(Kind, &'static str); 19] = [
        (Kind::Error, "Error"),
        (Kind::OpenError, "OpenError"),
        (Kind::RingError, "RingError"),
        (Kind::CommandError, "CommandError"),
        (Kind::BusyError, "BusyError"),
        (Kind::GeometryError, "GeometryError"),
        (Kind::AllocationError, "AllocationError"),
        (Kind::MemlockLimit, "MemlockLimit"),
        (Kind::Timeout, "Timeout"),
        (Kind::Canceled, "Canceled"),
        (Kind::Stopped, "Stopped"),
        (Kind::StreamEnded, "StreamEnded"),
        (Kind::CardGone, "CardGone"),
        (Kind::InUse, "InUse"),
        (Kind::AbiMismatch, "AbiMismatch"),
        (Kind::FeatureError, "FeatureError"),
        (Kind::FeatureValueError, "FeatureValueError"),
        (Kind::FrameReleased, "FrameReleased"),
        (Kind::NoCamera, "NoCamera"),
    ];

    /// Checks at compile time that `ALL` lists the kinds in declaration order, which
    /// [`class`] relies on to index the looked-up classes.
    const IN_ORDER: () = {
        let mut i = 0;
        while i < Self::ALL.len() {
            assert!(Self::ALL[i].0 as usize == i);
            i += 1;
        }
    };

    /// A Python exception of this class with `message` (and `errno`, if the kernel gave one).
    pub(crate) fn err(self, message: impl Into<String>, errno: Option<i32>) -> PyErr {
        let message = message.into();
        Python::attach(|py| match class(py, self) {
            Ok(class) => {
                let error = PyErr::from_type(class.clone(), (message,));
                if let Some(errno) = errno {
                    // OSError subclasses take `errno` as an attribute too.
                    let _ = error.value(py).setattr("errno", errno);
                }
                error
            }
            Err(error) => error,
        })
    }
}

/// The class of `kind`, importing `fgrab.errors` on first use.
fn class(py: Python<'_>, kind: Kind) -> PyResult<Bound<'_, PyType>> {
    let classes = CLASSES.get_or_try_init(py, || -> PyResult<_> {
        let module = py.import("fgrab.errors")?;
        Kind::ALL
            .iter()
            .map(|(_, name)| Ok(module.getattr(*name)?.cast_into::<PyType>()?.unbind()))
            .collect()
    })?;
    let () = Kind::IN_ORDER;
    Ok(classes[kind as usize].bind(py).clone())
}

/// The Python exception for a library error.
pub(crate) fn to_py(error: fgrab::Error) -> PyErr {
    use fgrab::Error as E;
    let message = error.to_string();
    let (kind, errno) = match &error {
        E::Open { source, .. } => (Kind::OpenError, source.raw_os_error()),
        E::Ring { source, .. } => (Kind::RingError, source.raw_os_error()),
        E::Command { errno, .. } if *errno == libc::EBUSY => (Kind::BusyError, Some(*errno)),
        E::Command { errno, .. } => (Kind::CommandError, Some(*errno)),
        E::Geometry { .. } => (Kind::GeometryError, None),
        E::Buffer { .. } => (Kind::AllocationError, None),
        E::MemlockLimit { .. } => (Kind::MemlockLimit, None),
        E::Timeout { .. } => (Kind::Timeout, None),
        E::Canceled => (Kind::Canceled, None),
        E::Stopped => (Kind::Stopped, None),
        E::Ended | E::Unreclaimable => (Kind::StreamEnded, None),
        E::CardGone => (Kind::CardGone, None),
        E::InUse { .. } => (Kind::InUse, None),
        E::AbiMismatch { .. } => (Kind::AbiMismatch, None),
        E::Busy { .. } => (Kind::BusyError, Some(libc::EBUSY)),
        E::NoSuchFeature { .. } => (Kind::FeatureError, None),
        E::InvalidValue { .. } => (Kind::FeatureValueError, None),
        E::NoCamera => (Kind::NoCamera, None),
        _ => (Kind::Error, None),
    };
    kind.err(message, errno)
}

/// `Result` of the library as a Python result.
pub(crate) trait IntoPy<T> {
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for fgrab::Result<T> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}
