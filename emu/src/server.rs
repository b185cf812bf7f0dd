//! vfio-user glue: regions, interrupt indexes and the [`ServerBackend`] that routes
//! client messages to config space, BAR0 registers, the IOVA table and the eventfds.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use thiserror::Error;
use vfio_bindings::bindings::vfio::{
    vfio_region_info, VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX,
    VFIO_PCI_NUM_REGIONS, VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
};
use vfio_user::{DmaMapFlags, DmaUnmapFlags, Server, ServerBackend, ServerRegion};

use crate::camera::XML;
use crate::config::{ConfigSpace, CONFIG_SIZE};
use crate::dma::IovaTable;
use crate::engine::Device;
use crate::irq::{irq_infos, Interrupts};
use crate::regs::Register;
use fgrab_hw::{camera, msix, BAR0_SIZE};

/// Errors of the vfio-user server.
#[derive(Debug, Error)]
pub enum ServeError {
    /// Creating or running the vfio-user server failed.
    #[error("vfio-user server on {path}: {source}")]
    Server {
        /// Socket path.
        path: String,
        /// Cause.
        #[source]
        source: vfio_user::Error,
    },
}

/// Regions announced to the client: config space and BAR0; the others are absent.
pub fn regions() -> Vec<ServerRegion> {
    (0..VFIO_PCI_NUM_REGIONS)
        .map(|index| {
            let size = match index {
                VFIO_PCI_CONFIG_REGION_INDEX => CONFIG_SIZE as u64,
                VFIO_PCI_BAR0_REGION_INDEX => BAR0_SIZE as u64,
                _ => 0,
            };
            ServerRegion {
                region_info: vfio_region_info {
                    argsz: std::mem::size_of::<vfio_region_info>() as u32,
                    flags: if size > 0 {
                        VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE
                    } else {
                        0
                    },
                    index,
                    size,
                    ..Default::default()
                },
                sparse_areas: Vec::new(),
                // No mmap: every BAR access must reach the model as a message.
                mmap_fd: None,
            }
        })
        .collect()
}

/// The device as seen by the vfio-user server loop.
pub struct Backend {
    config: ConfigSpace,
    device: Arc<Device>,
    dma: Arc<IovaTable>,
    irqs: Arc<Interrupts>,
    /// MSI-X table bytes: QEMU emulates the table itself, so this only answers accesses
    /// that reach the device anyway.
    msix_table: Vec<u8>,
}

impl Backend {
    /// Backend over a started device.
    pub fn new(device: Arc<Device>, dma: Arc<IovaTable>, irqs: Arc<Interrupts>) -> Self {
        Self {
            config: ConfigSpace::new(),
            device,
            dma,
            irqs,
            msix_table: vec![0; (u32::from(msix::VECTORS) * msix::TABLE_ENTRY_SIZE) as usize],
        }
    }

    fn bar0_read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        let table = u64::from(msix::TABLE_OFFSET);
        if (table..table + self.msix_table.len() as u64).contains(&offset) {
            // CAST: inside the small table.
            let at = (offset - table) as usize;
            for (i, b) in data.iter_mut().enumerate() {
                *b = self.msix_table.get(at + i).copied().unwrap_or(0);
            }
            return;
        }
        if offset >= u64::from(msix::PBA_OFFSET) {
            // Pending bits: QEMU owns vector masking, so the device never holds a
            // message back; the PBA reads 0.
            return;
        }
        // Registers, the feature window and the XML: split into 32-bit accesses; narrower
        // reads return their bytes.
        let mut done = 0;
        while done < data.len() {
            let at = offset + done as u64;
            let aligned = at & !3;
            let value = match Area::of(aligned) {
                Area::Registers => {
                    Register::at(aligned).map_or(0, |r| self.device.read_register(r))
                }
                Area::Window(offset) => self.device.read_feature(offset),
                Area::Xml(offset) => xml_word(offset),
                Area::None => 0,
            };
            let bytes = value.to_le_bytes();
            // CAST: below 4.
            let first = (at - aligned) as usize;
            let n = (4 - first).min(data.len() - done);
            data[done..done + n].copy_from_slice(&bytes[first..first + n]);
            done += n;
        }
    }

    fn bar0_write(&mut self, offset: u64, data: &[u8]) {
        let table = u64::from(msix::TABLE_OFFSET);
        if (table..table + self.msix_table.len() as u64).contains(&offset) {
            // CAST: inside the small table.
            let at = (offset - table) as usize;
            for (i, &b) in data.iter().enumerate() {
                if let Some(slot) = self.msix_table.get_mut(at + i) {
                    *slot = b;
                }
            }
            return;
        }
        if offset % 4 != 0 || data.len() % 4 != 0 {
            log::warn!(
                "BAR0 write of {} bytes at {offset:#x}: registers take aligned 32-bit writes; ignored",
                data.len()
            );
            return;
        }
        // 64-bit writes are two 32-bit writes, low half first.
        for (i, word) in data.chunks_exact(4).enumerate() {
            let at = offset + 4 * i as u64;
            let value = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
            match Area::of(at) {
                Area::Registers => {}
                Area::Window(offset) => {
                    log::trace!("feature write {offset:#x} = {value:#x}");
                    self.device.write_feature(offset, value);
                    continue;
                }
                Area::Xml(_) | Area::None => {
                    log::debug!("write {value:#x} to read-only BAR0 offset {at:#x} ignored");
                    continue;
                }
            }
            match Register::at(at) {
                Some(reg) => {
                    log::trace!("write {reg:?} = {value:#x}");
                    self.device.write_register(reg, value);
                }
                None => log::debug!("write {value:#x} to undefined BAR0 offset {at:#x}"),
            }
        }
    }
}

/// The part of BAR0 below the MSI-X table an offset falls in (docs/hardware.md §3, §3.8).
enum Area {
    Registers,
    /// Byte offset in the feature window.
    Window(u32),
    /// Byte offset in the XML area.
    Xml(u32),
    None,
}

impl Area {
    fn of(offset: u64) -> Area {
        let Ok(offset) = u32::try_from(offset) else {
            return Area::None;
        };
        // CAST: u32 to usize, widening.
        if (offset as usize) < fgrab_hw::REGISTER_BLOCK_SIZE {
            Area::Registers
        } else if (camera::WINDOW_OFFSET..camera::WINDOW_OFFSET + camera::WINDOW_SIZE)
            .contains(&offset)
        {
            Area::Window(offset - camera::WINDOW_OFFSET)
        } else if (camera::XML_OFFSET..camera::XML_OFFSET + camera::XML_MAX_SIZE).contains(&offset)
        {
            Area::Xml(offset - camera::XML_OFFSET)
        } else {
            Area::None
        }
    }
}

/// The XML's little-endian word at byte `offset` (4-byte aligned); 0 past its end.
fn xml_word(offset: u32) -> u32 {
    let mut word = [0u8; 4];
    for (i, byte) in word.iter_mut().enumerate() {
        // CAST: u32 to usize, widening.
        *byte = XML.get(offset as usize + i).copied().unwrap_or(0);
    }
    u32::from_le_bytes(word)
}

impl ServerBackend for Backend {
    fn region_read(&mut self, region: u32, offset: u64, data: &mut [u8]) -> std::io::Result<()> {
        if self.device.is_removed() {
            // A device that is gone answers every read with all ones, like a PCIe
            // completion timeout / unsupported request.
            data.fill(0xff);
            return Ok(());
        }
        match region {
            VFIO_PCI_CONFIG_REGION_INDEX => self.config.read(offset, data),
            VFIO_PCI_BAR0_REGION_INDEX => self.bar0_read(offset, data),
            _ => data.fill(0xff),
        }
        Ok(())
    }

    fn region_write(&mut self, region: u32, offset: u64, data: &[u8]) -> std::io::Result<()> {
        if self.device.is_removed() {
            return Ok(());
        }
        match region {
            VFIO_PCI_CONFIG_REGION_INDEX => {
                let effects = self.config.write(offset, data);
                if effects.function_reset {
                    log::info!("function level reset");
                    self.device.reset_and_wait();
                }
                if let Some(enabled) = effects.bus_master {
                    self.device.set_bus_master(enabled);
                }
            }
            VFIO_PCI_BAR0_REGION_INDEX => self.bar0_write(offset, data),
            _ => log::debug!("write to absent region {region} ignored"),
        }
        Ok(())
    }

    fn dma_map(
        &mut self,
        flags: DmaMapFlags,
        offset: u64,
        address: u64,
        size: u64,
        fd: Option<File>,
    ) -> std::io::Result<()> {
        log::trace!("DMA_MAP iova {address:#x} size {size:#x} offset {offset:#x} {flags:?}");
        if fd.is_none() {
            // QEMU announces ROM and other non-shareable regions (BIOS, option ROMs) without
            // a file descriptor. The card never DMAs there; leaving them unmapped makes any
            // access a reported DMA fault, which is what real hardware would see.
            log::debug!(
                "DMA_MAP of IOVA {address:#x} size {size:#x} without fd: not DMA-reachable"
            );
            return Ok(());
        }
        self.dma
            .map(
                address,
                size,
                offset,
                fd,
                flags.contains(DmaMapFlags::READ),
                flags.contains(DmaMapFlags::WRITE),
            )
            .map_err(|e| {
                log::warn!("{e}");
                std::io::Error::other(e)
            })
    }

    fn dma_unmap(&mut self, flags: DmaUnmapFlags, address: u64, size: u64) -> std::io::Result<()> {
        log::trace!("DMA_UNMAP iova {address:#x} size {size:#x} {flags:?}");
        if flags.contains(DmaUnmapFlags::UNMAP_ALL) {
            self.dma.unmap_all();
        } else {
            self.dma.unmap(address, size);
        }
        Ok(())
    }

    fn reset(&mut self) -> std::io::Result<()> {
        log::info!("device reset by client");
        self.device.reset_and_wait();
        Ok(())
    }

    fn set_irqs(
        &mut self,
        index: u32,
        flags: u32,
        start: u32,
        count: u32,
        fds: Vec<File>,
    ) -> std::io::Result<()> {
        log::debug!(
            "SET_IRQS index {index} flags {flags:#x} start {start} count {count} fds {}",
            fds.len()
        );
        self.irqs.set(index, flags, start, count, fds)
    }
}

/// Serves the device on `socket` until the client disconnects.
///
/// # Errors
///
/// Socket creation or protocol failure.
pub fn serve(socket: &Path, backend: &mut Backend) -> Result<(), ServeError> {
    let wrap = |source| ServeError::Server {
        path: socket.display().to_string(),
        source,
    };
    let server = Server::new(socket, true, irq_infos(), regions()).map_err(wrap)?;
    log::info!("listening on {}", socket.display());
    server.run(backend).map_err(wrap)?;
    // The client is gone: no more eventfds, no more DMA.
    backend.device.reset_and_wait();
    backend.irqs.clear();
    backend.dma.unmap_all();
    Ok(())
}
