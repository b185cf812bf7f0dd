//! Frames from an async task: `cargo run --example tokio_frames --features tokio [-- /dev/fgrabN]`.
//!
//! A `SharedStream` gives its frames as an async source; each frame is an `OwnedFrame` that
//! goes back to the card when dropped, here at the end of each loop turn. The VM test
//! `client-tokio` runs the same loop and checks every byte of 1,000 frames.

use fgrab::{Buffer, Card, Geometry};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/dev/fgrab0".into());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    // 16 frames of 1 MiB + 3 bytes, 5 bytes into the buffer: nothing needs alignment.
    let geometry = Geometry::new((1 << 20) + 3, 16).offset(5);
    let buffer = Buffer::allocate(16 * ((1 << 20) + 3) + 5)?;
    let stream = Card::open(&path)?.attach(buffer, geometry)?.into_shared()?;
    runtime.block_on(async {
        let mut frames = stream.async_frames()?;
        stream.start()?;
        for _ in 0..1000 {
            let frame = tokio::time::timeout(Duration::from_secs(5), frames.next()).await??;
            println!(
                "frame {}: {} bytes, {:?}",
                frame.sequence(),
                frame.len(),
                frame.status()
            );
        }
        stream.stop()?;
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
