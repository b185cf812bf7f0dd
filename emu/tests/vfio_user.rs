//! End-to-end over the vfio-user protocol: the crate's own client plays QEMU against the
//! real server, backend, engine and IOVA table.

use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fgrab_emu::dma::{memfd, IovaTable};
use fgrab_emu::dma_rings::{CompletionRecord, Descriptor, SubmitEntry};
use fgrab_emu::engine::{Device, EngineConfig};
use fgrab_emu::irq::Interrupts;
use fgrab_emu::pattern;
use fgrab_emu::regs::{Control, Register};
use fgrab_emu::server::{serve, Backend};
use fgrab_hw::pci::{DEVICE_ID, VENDOR_ID};
use fgrab_hw::MAGIC;
use vfio_bindings::bindings::vfio::{VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX};
use vfio_user::Client;
use zerocopy::{FromBytes, IntoBytes};

const PAGE: u64 = 4096;
const IOVA: u64 = 0x8000_0000;

fn write_reg(client: &mut Client, reg: Register, value: u32) {
    client
        .region_write(
            VFIO_PCI_BAR0_REGION_INDEX,
            reg.offset().into(),
            &value.to_le_bytes(),
        )
        .unwrap();
}

fn read_reg(client: &mut Client, reg: Register) -> u32 {
    let mut b = [0u8; 4];
    client
        .region_read(VFIO_PCI_BAR0_REGION_INDEX, reg.offset().into(), &mut b)
        .unwrap();
    u32::from_le_bytes(b)
}

#[test]
fn client_streams_frames_through_page_sized_dma_maps() {
    let dir = std::env::temp_dir().join(format!("fgrab-emu-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("fpga.sock");
    let _ = std::fs::remove_file(&socket);

    let dma = Arc::new(IovaTable::new());
    let irqs = Arc::new(Interrupts::new());
    let config = EngineConfig {
        frame_bytes: 5000,
        period: Some(Duration::from_millis(1)),
        ..EngineConfig::default()
    };
    let (device, _engine) = Device::start(config, dma.clone(), irqs.clone()).unwrap();
    let mut backend = Backend::new(device.clone(), dma.clone(), irqs);
    let server_socket = socket.clone();
    let server = std::thread::spawn(move || serve(&server_socket, &mut backend));
    let start = Instant::now();
    while !socket.exists() {
        assert!(start.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut client = Client::new(&socket).unwrap();

    let mut id = [0u8; 4];
    client
        .region_read(VFIO_PCI_CONFIG_REGION_INDEX, 0, &mut id)
        .unwrap();
    assert_eq!(
        id,
        [VENDOR_ID.to_le_bytes(), DEVICE_ID.to_le_bytes()].concat()[..]
    );
    // Bus master on.
    client
        .region_write(VFIO_PCI_CONFIG_REGION_INDEX, 4, &[0x06, 0x00])
        .unwrap();
    assert_eq!(read_reg(&mut client, Register::Id), MAGIC);

    // Guest RAM: 64 pages mapped one page per message, as QEMU does behind an IOMMU.
    let ram = memfd("guest", 64 * PAGE).unwrap();
    for p in 0..64 {
        client
            .dma_map(p * PAGE, IOVA + p * PAGE, PAGE, ram.as_raw_fd())
            .unwrap();
    }
    assert_eq!(dma.files(), 1);
    assert_eq!(dma.ranges(), 1);

    let submit_ring = IOVA;
    let completion_ring = IOVA + PAGE;
    let list_addr = IOVA + 2 * PAGE;
    let buffer = IOVA + 4 * PAGE + 1;
    let list = [Descriptor {
        addr: buffer,
        len: 6000,
        flags: Descriptor::LAST,
    }];
    ram.write_all_at(list.as_bytes(), list_addr - IOVA).unwrap();
    let entry = SubmitEntry {
        desc_addr: list_addr,
        desc_count: 1,
        reserved: 0,
        cookie: 77,
    };
    ram.write_all_at(entry.as_bytes(), submit_ring - IOVA)
        .unwrap();

    write_reg(&mut client, Register::SubmitBaseLo, submit_ring as u32);
    write_reg(&mut client, Register::SubmitBaseHi, 0);
    write_reg(&mut client, Register::SubmitSize, 8);
    write_reg(
        &mut client,
        Register::CompletionBaseLo,
        completion_ring as u32,
    );
    write_reg(&mut client, Register::CompletionBaseHi, 0);
    write_reg(&mut client, Register::CompletionSize, 8);
    write_reg(&mut client, Register::SubmitTail, 1);
    write_reg(&mut client, Register::Control, Control::ENABLE.bits());

    let start = Instant::now();
    while read_reg(&mut client, Register::CompletionTail) != 1 {
        assert!(start.elapsed() < Duration::from_secs(10), "no completion");
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut raw = [0u8; 32];
    ram.read_exact_at(&mut raw, completion_ring - IOVA).unwrap();
    let record = CompletionRecord::read_from_bytes(&raw).unwrap();
    assert_eq!((record.cookie, record.status, record.bytes), (77, 0, 5000));
    let mut frame = vec![0u8; 5000];
    ram.read_exact_at(&mut frame, buffer - IOVA).unwrap();
    pattern::verify(&frame, record.sequence, 0).unwrap();

    // Unmapping the buffer's pages turns the next frame into a reported DMA fault.
    client.dma_unmap(IOVA + 4 * PAGE, 4 * PAGE).unwrap();
    ram.write_all_at(entry.as_bytes(), submit_ring - IOVA + 16)
        .unwrap();
    write_reg(&mut client, Register::CompletionHead, 1);
    write_reg(&mut client, Register::SubmitTail, 2);
    while read_reg(&mut client, Register::CompletionTail) != 2 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no fault completion"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    ram.read_exact_at(&mut raw, completion_ring - IOVA + 32)
        .unwrap();
    let record = CompletionRecord::read_from_bytes(&raw).unwrap();
    assert_eq!(record.status, 2, "DMA_ERROR");
    assert_eq!(read_reg(&mut client, Register::FaultAddrLo), buffer as u32);

    client.shutdown().unwrap();
    drop(client);
    server.join().unwrap().unwrap();
    device.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
