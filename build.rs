//! Compiles `proto/raftchat.proto` with a vendored `protoc`, so a fresh machine
//! needs nothing beyond cargo.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the env here.
    unsafe { std::env::set_var("PROTOC", protoc) };
    println!("cargo:rerun-if-changed=proto/raftchat.proto");
    // The descriptor set feeds gRPC server reflection (grpcurl and friends).
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    // Messages and clients, with prost's own codec.
    tonic_prost_build::configure()
        .build_server(false)
        .file_descriptor_set_path(out_dir.join("raftchat_descriptor.bin"))
        .compile_protos(&["proto/raftchat.proto"], &["proto"])?;
    // The servers, apart: their codec answers a request that does not decode
    // (such as a string field that is not UTF-8) with INVALID_ARGUMENT, where
    // prost's says INTERNAL. Clients keep prost's codec, so a malformed
    // *reply* still reads as the server's fault.
    let server_dir = out_dir.join("server");
    std::fs::create_dir_all(&server_dir)?;
    tonic_prost_build::configure()
        .build_client(false)
        .out_dir(&server_dir)
        .extern_path(".raftchat.v1", "crate::proto")
        .codec_path("crate::server::codec::RequestCodec")
        .compile_protos(&["proto/raftchat.proto"], &["proto"])?;
    Ok(())
}
