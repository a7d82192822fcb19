//! Generated gRPC types and services for `proto/raftchat.proto`.
#![allow(clippy::all, missing_docs)]

tonic::include_proto!("raftchat.v1");
