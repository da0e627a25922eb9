fn main() {
    for p in std::env::args().skip(1) {
        let t = std::time::Instant::now();
        match rbee_gguf::Gguf::read_file(p.as_ref(), &rbee_gguf::ReadOptions::default()) {
            Ok(g) => println!(
                "{p}: v{} kvs {} tensors {} data_offset {} size {} {:?}",
                g.version,
                g.metadata.len(),
                g.tensors.len(),
                g.data_offset,
                g.file_size,
                t.elapsed()
            ),
            Err(e) => println!("{p}: ERROR {e}"),
        }
    }
}
