//! Interrupt delivery: eventfds that QEMU hands over with VFIO_USER_DEVICE_SET_IRQS.
//!
//! The server thread installs and removes eventfds; the frame engine thread signals them.
//! Writing to an eventfd is all a "message" is: QEMU turns it into the MSI-X message
//! programmed in its emulated table.

use std::fs::File;
use std::io::Write;
use std::sync::Mutex;

use vfio_bindings::bindings::vfio::{
    VFIO_IRQ_INFO_EVENTFD, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_DATA_EVENTFD,
    VFIO_IRQ_SET_DATA_NONE, VFIO_PCI_ERR_IRQ_INDEX, VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_NUM_IRQS,
    VFIO_PCI_REQ_IRQ_INDEX,
};
use vfio_user::IrqInfo;

use fgrab_hw::msix;

/// Interrupt indexes and vector counts announced to the client: MSI-X with
/// [`msix::VECTORS`] vectors, ERR and REQ with one each (QEMU warns without them), no
/// INTx, no MSI.
pub fn irq_infos() -> Vec<IrqInfo> {
    (0..VFIO_PCI_NUM_IRQS)
        .map(|index| {
            let count = vectors_of(index);
            IrqInfo {
                index,
                count,
                flags: if count > 0 { VFIO_IRQ_INFO_EVENTFD } else { 0 },
            }
        })
        .collect()
}

fn vectors_of(index: u32) -> u32 {
    match index {
        VFIO_PCI_MSIX_IRQ_INDEX => u32::from(msix::VECTORS),
        VFIO_PCI_ERR_IRQ_INDEX | VFIO_PCI_REQ_IRQ_INDEX => 1,
        _ => 0,
    }
}

/// Eventfds per interrupt index and vector.
pub struct Interrupts {
    /// Indexed by VFIO irq index, then vector.
    slots: Mutex<Vec<Vec<Option<File>>>>,
}

impl Default for Interrupts {
    fn default() -> Self {
        Self::new()
    }
}

impl Interrupts {
    /// No eventfd installed.
    pub fn new() -> Self {
        let slots = (0..VFIO_PCI_NUM_IRQS)
            .map(|index| (0..vectors_of(index)).map(|_| None).collect())
            .collect();
        Self {
            slots: Mutex::new(slots),
        }
    }

    /// Applies a SET_IRQS request.
    ///
    /// QEMU sends vectors without an eventfd (fd -1) as a message with `count` set and no
    /// descriptors: those vectors are disabled.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for an index or vector range the device does not have.
    pub fn set(
        &self,
        index: u32,
        flags: u32,
        start: u32,
        count: u32,
        fds: Vec<File>,
    ) -> std::io::Result<()> {
        let invalid = || std::io::Error::from(std::io::ErrorKind::InvalidInput);
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let vectors = slots.get_mut(index as usize).ok_or_else(invalid)?;
        if flags & VFIO_IRQ_SET_ACTION_TRIGGER == 0 {
            // MASK / UNMASK only concern INTx, which the device does not have.
            return Ok(());
        }
        if flags & VFIO_IRQ_SET_DATA_NONE != 0 && count == 0 {
            log::debug!("irq index {index}: all vectors disabled");
            vectors.iter_mut().for_each(|v| *v = None);
            return Ok(());
        }
        let end = start.checked_add(count).ok_or_else(invalid)?;
        let range = vectors
            .get_mut(start as usize..end as usize)
            .ok_or_else(invalid)?;
        if flags & VFIO_IRQ_SET_DATA_EVENTFD != 0 {
            let mut fds = fds.into_iter();
            for (i, slot) in range.iter_mut().enumerate() {
                *slot = fds.next();
                log::debug!(
                    "irq index {index} vector {}: {}",
                    start as usize + i,
                    if slot.is_some() { "eventfd" } else { "off" }
                );
            }
        } else if flags & VFIO_IRQ_SET_DATA_NONE != 0 {
            // Loopback trigger requested by the client.
            for slot in range.iter_mut().flatten() {
                let _ = slot.write_all(&1u64.to_ne_bytes());
            }
        }
        Ok(())
    }

    /// Signals MSI-X `vector`. Returns whether an eventfd was installed.
    pub fn signal_msix(&self, vector: usize) -> bool {
        self.signal(VFIO_PCI_MSIX_IRQ_INDEX, vector)
    }

    /// Signals the REQ index: QEMU answers by requesting a hot unplug of the device.
    pub fn signal_request(&self) -> bool {
        self.signal(VFIO_PCI_REQ_IRQ_INDEX, 0)
    }

    /// Drops every eventfd (device reset by the client or disconnect).
    pub fn clear(&self) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.iter_mut().flatten().for_each(|v| *v = None);
    }

    fn signal(&self, index: u32, vector: usize) -> bool {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let Some(Some(fd)) = slots
            .get_mut(index as usize)
            .and_then(|v| v.get_mut(vector))
        else {
            return false;
        };
        // An eventfd write only fails if the counter would overflow: the interrupt is
        // then pending anyway.
        let _ = fd.write_all(&1u64.to_ne_bytes());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::FromRawFd;

    fn eventfd() -> File {
        // SAFETY: plain syscall; the result is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        assert!(fd >= 0);
        // SAFETY: fresh descriptor owned by nobody else.
        unsafe { File::from_raw_fd(fd) }
    }

    #[test]
    fn install_signal_and_disable() {
        let irqs = Interrupts::new();
        let efd = eventfd();
        let flags = VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_EVENTFD;
        irqs.set(
            VFIO_PCI_MSIX_IRQ_INDEX,
            flags,
            1,
            1,
            vec![efd.try_clone().unwrap()],
        )
        .unwrap();
        assert!(!irqs.signal_msix(0));
        assert!(irqs.signal_msix(1));
        let mut count = [0u8; 8];
        (&efd).read_exact(&mut count).unwrap();
        assert_eq!(u64::from_ne_bytes(count), 1);
        // fd -1 from QEMU arrives as count 1 without descriptors.
        irqs.set(VFIO_PCI_MSIX_IRQ_INDEX, flags, 1, 1, vec![])
            .unwrap();
        assert!(!irqs.signal_msix(1));
        assert!(irqs
            .set(VFIO_PCI_MSIX_IRQ_INDEX, flags, 2, 1, vec![])
            .is_err());
        assert!(irqs.set(99, flags, 0, 1, vec![]).is_err());
        let infos = irq_infos();
        assert_eq!(infos[VFIO_PCI_REQ_IRQ_INDEX as usize].count, 1);
        assert_eq!(infos[VFIO_PCI_ERR_IRQ_INDEX as usize].count, 1);
        assert_eq!(infos[0].count, 0);
    }
}
