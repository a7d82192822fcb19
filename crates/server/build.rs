//! Generates the gRPC servers for `proto/raftchat.proto` (messages and
//! clients come from `raftchat-proto`), with a vendored `protoc`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the env here.
    unsafe { std::env::set_var("PROTOC", protoc) };
    println!("cargo:rerun-if-changed=../../proto/raftchat.proto");
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    // The servers decode requests with our codec: a request that does not
    // decode (such as a string field that is not UTF-8) is answered with
    // INVALID_ARGUMENT, where prost's says INTERNAL. The descriptor set feeds
    // gRPC server reflection (grpcurl and friends).
    tonic_prost_build::configure()
        .build_client(false)
        .extern_path(".raftchat.v1", "::raftchat_proto")
        .codec_path("crate::api::codec::RequestCodec")
        .file_descriptor_set_path(out_dir.join("raftchat_descriptor.bin"))
        .compile_protos(&["../../proto/raftchat.proto"], &["../../proto"])?;
    Ok(())
}
