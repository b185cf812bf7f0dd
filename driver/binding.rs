// SPDX-License-Identifier: GPL-2.0

//! Layer 5: the PCI binding. Probe brings a card up as `/dev/fgrabN`, unbind takes it
//! down.
//!
//! Probe is a straight line: each acquired resource is owned by a value whose `Drop`
//! releases it, so an early `?` undoes exactly what was done.

use kernel::{
    device::Core,
    dma::DmaMask,
    io::Io,
    pci,
    prelude::*,
    str::CString,
    sync::{aref::ARef, Arc},
};

use crate::{
    abstractions::{
        ids::Index,
        irq::MsixHandlers,
        misc::MiscRegistration,
        pci::{location, set_bus_master, set_dma_limits},
        periodic::Periodic,
    },
    card::{Card, CardInterrupt},
    domain::camera::Camera,
    file::OpenFile,
    hardware::{
        camera, definition,
        engine::{Engine, RING_ENTRIES},
        regs,
    },
    uapi::{DeviceInfo, ABI_VERSION, MAX_FRAMES},
};

/// Address bits the card drives on the bus (`docs/hardware.md`: 64-bit descriptors).
const DMA_ADDRESS_BITS: u32 = 64;

/// Period of the completion watchdog: interrupt messages can be lost
/// (`docs/hardware.md` §7), and a stream must not stall on one.
const WATCHDOG_MS: u32 = 100;

/// Smallest `MAX_SEGMENT_BYTES` the driver accepts: one page, the DMA layer's smallest
/// mapped entry.
const MIN_SEGMENT_BYTES: u32 = 4096;

/// A capability register's value and the range the driver accepts (`docs/hardware.md`
/// §3.1, "Capability checks").
struct Capability {
    name: &'static str,
    value: u32,
    min: u32,
    max: u32,
}

/// The PCI driver.
pub(crate) struct FgrabDriver;

/// Per-binding data; dropped at unbind (after `unbind()` ended any stream), fields in
/// declaration order.
pub(crate) struct BoundCard<'bound> {
    /// `/dev/fgrabN`: removed first, so no new file can reach the card.
    _misc: MiscRegistration<OpenFile>,
    /// Polls for completions whose interrupt was lost; stopped before the handlers go.
    _watchdog: Periodic<Card>,
    /// Interrupt handlers, freed before the vectors they run on.
    _interrupts: MsixHandlers<'bound, CardInterrupt>,
    /// Shared with open files, which may outlive the binding; its BAR is revoked at unbind.
    card: Arc<Card>,
}

kernel::pci_device_table!(
    PCI_TABLE,
    <FgrabDriver as pci::Driver>::IdInfo,
    [(
        // CAST: u16 to u32, widening (`From` is not const).
        pci::DeviceId::from_id(pci::Vendor::XILINX, definition::pci::DEVICE_ID as u32),
        ()
    )]
);

// The kernel names vendors; the card's definition has the number.
const _: () = assert!(pci::Vendor::XILINX.as_raw() == definition::pci::VENDOR_ID);

impl pci::Driver for FgrabDriver {
    type IdInfo = ();
    type Data<'bound> = BoundCard<'bound>;

    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        pdev.enable_device_mem()?;
        // No DMA until the card was reset (it may still run what a previous kernel or driver
        // gave it): bus mastering stays off until the first START (see `hardware/engine.rs`).
        set_bus_master(pdev, false);
        let bar = pdev.iomap_region_sized::<{ regs::BAR0_SIZE }>(0, c"fgrab")?;

        let magic = bar.read(regs::ID).magic().get();
        if magic != regs::MAGIC {
            dev_err!(pdev, "not an fgrab card (ID register {:#010x})\n", magic);
            return Err(ENODEV);
        }
        let version = bar.read(regs::VERSION);
        if version.major().get() != regs::INTERFACE_MAJOR {
            dev_err!(
                pdev,
                "hardware interface v{}.{} is not supported (driver implements v{})\n",
                version.major().get(),
                version.minor().get(),
                regs::INTERFACE_MAJOR
            );
            return Err(ENODEV);
        }
        // The card is not trusted: every capability is checked before the driver relies on
        // it, and a card outside the rules is refused here, with the reason, rather than
        // failing later far from the cause.
        let capabilities = [
            Capability {
                name: "MAX_SEGMENT_BYTES",
                value: bar.read(regs::MAX_SEGMENT_BYTES).bytes().get(),
                // The DMA layer hands out page-sized entries: one must fit a descriptor.
                min: MIN_SEGMENT_BYTES,
                max: u32::MAX,
            },
            Capability {
                name: "MAX_DESCRIPTORS",
                value: bar.read(regs::MAX_DESCRIPTORS).count().get(),
                // A submit entry's `desc_count` is 16 bits wide.
                min: 1,
                max: u32::from(u16::MAX),
            },
            Capability {
                name: "RING_MAX_ENTRIES",
                value: bar.read(regs::RING_MAX_ENTRIES).entries().get(),
                // The driver's rings have this many entries.
                min: RING_ENTRIES,
                max: u32::MAX,
            },
            Capability {
                name: "MAX_FRAME_SLOTS",
                value: bar.read(regs::MAX_FRAME_SLOTS).count().get(),
                min: 1,
                max: u32::MAX,
            },
            Capability {
                name: "MAX_FRAME_BYTES",
                value: bar.read(regs::MAX_FRAME_BYTES).bytes().get(),
                // A filled frame's byte count is its command's result, an `i32`.
                min: 1,
                // CAST: a positive constant.
                max: i32::MAX as u32,
            },
        ];
        let mut refused = false;
        for capability in &capabilities {
            if !(capability.min..=capability.max).contains(&capability.value) {
                dev_err!(
                    pdev,
                    "capability register {} reads {:#x}, outside {:#x}..={:#x}: card refused\n",
                    capability.name,
                    capability.value,
                    capability.min,
                    capability.max
                );
                refused = true;
            }
        }
        if refused {
            return Err(ENODEV);
        }
        let [max_segment_bytes, max_descriptors, _, max_frame_slots, max_frame_bytes] =
            capabilities.map(|capability| capability.value);
        // Before anything is allocated or mapped for the card. Mappings may produce entries
        // as long as one descriptor can carry (the PCI default is 64 KiB).
        set_dma_limits(pdev, DmaMask::new::<DMA_ADDRESS_BITS>(), max_segment_bytes)?;

        let pdev_ref: ARef<pci::Device> = pdev.into();
        let engine = Engine::new(pdev.as_ref(), pdev_ref.clone())?;
        let index = Index::alloc()?;
        let info = DeviceInfo {
            // CAST: the structure is 88 bytes.
            struct_size: core::mem::size_of::<DeviceInfo>() as u32,
            abi_version: ABI_VERSION,
            card_index: index.get(),
            hw_version: version.into_raw(),
            vendor_id: pdev.vendor_id().as_raw(),
            device_id: pdev.device_id(),
            subsystem_vendor_id: pdev.subsystem_vendor_id(),
            subsystem_id: pdev.subsystem_device_id(),
            pci_location: location(pdev),
            revision: pdev.revision_id(),
            max_segment_bytes,
            max_descriptors_per_frame: max_descriptors,
            frame_bytes: bar.read(regs::FRAME_BYTES).bytes().get(),
            dma_address_bits: DMA_ADDRESS_BITS,
            frame_period_ns: u64::from(bar.read(regs::FRAME_PERIOD_NS).nanoseconds().get()),
            max_frame_bytes,
            max_frames: max_frame_slots.min(MAX_FRAMES),
            ..DeviceInfo::default()
        };
        // A camera whose areas break the rules streams on without its camera features.
        let camera = camera::announced(&bar).and_then(|announced| {
            Camera::new(&announced)
                .inspect_err(|reason| {
                    dev_warn!(
                        pdev,
                        "camera description refused ({}): window {:#x}+{:#x}, XML {:#x}+{:#x}; \
                         no camera features\n",
                        reason,
                        announced.window_offset,
                        announced.window_size,
                        announced.xml_offset,
                        announced.xml_size
                    );
                })
                .ok()
        });
        let name = CString::try_from_fmt(fmt!("fgrab{}", index.get()))?;
        let card = Arc::pin_init(
            Card::new(
                index,
                info,
                pdev_ref.clone(),
                bar.into_devres()?,
                camera,
                engine,
            ),
            GFP_KERNEL,
        )?;
        card.reset()?;
        let interrupts = MsixHandlers::new(pdev, CardInterrupt::all(&card))?;
        let watchdog = Periodic::start(&card, WATCHDOG_MS)?;
        let misc = MiscRegistration::new(name, card.clone(), pdev)?;
        // Nothing fails from here: the watchdog outlives the handle, which `unbind` drops.
        card.set_watchdog(watchdog.kick_handle());
        dev_info!(
            pdev,
            "card {} ready as /dev/fgrab{}: interface v{}.{}\n",
            card.index(),
            card.index(),
            version.major().get(),
            version.minor().get()
        );
        Ok(BoundCard {
            _misc: misc,
            _watchdog: watchdog,
            _interrupts: interrupts,
            card,
        })
    }

    fn unbind<'bound>(_pdev: &'bound pci::Device<Core<'_>>, this: Pin<&Self::Data<'bound>>) {
        // End any attached region now: its DMA mappings must not outlive the binding.
        this.card.shutdown();
    }
}
