//! Compiles `proto/raftchat.proto` with a vendored `protoc`, so a fresh machine
//! needs nothing beyond cargo.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the env here.
    unsafe { std::env::set_var("PROTOC", protoc) };
    println!("cargo:rerun-if-changed=proto/raftchat.proto");
    // The descriptor set feeds gRPC server reflection (grpcurl and friends).
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("raftchat_descriptor.bin"))
        .compile_protos(&["proto/raftchat.proto"], &["proto"])?;
    Ok(())
}
