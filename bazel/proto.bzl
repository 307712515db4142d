"""dash_proto_library: the Bazel twin of CMake's dash_proto_library() (root CMakeLists.txt).

Runs Debian's /usr/bin/protoc (and /usr/bin/grpc_cpp_plugin when grpc = True) in a genrule and
wraps the generated .pb.cc/.pb.h (+ .grpc.pb.cc/.grpc.pb.h) in a cc_library named `name`.

As in CMake, protoc runs with `-Iproto -I.` (paths relative to the repository root), so
  proto/dash/v1/data.proto   is imported as "dash/v1/data.proto" and its header is included as
                             "dash/v1/data.pb.h";
  node/storage/records.proto is imported as "node/storage/records.proto", header
                             "node/storage/records.pb.h".

deps are other dash_proto_library targets, as full labels ("//proto:dash_api_proto", ":foo"):
their .proto files reach protoc through their `<name>_protos` filegroups and their C++ libraries
are linked (CMake's DEPS).

    load("//bazel:proto.bzl", "dash_proto_library")
    dash_proto_library(
        name = "dash_storage_proto",
        srcs = ["storage/records.proto"],
        deps = ["//proto:dash_api_proto"],
    )
"""

_PROTOC = "/usr/bin/protoc"
_GRPC_CPP_PLUGIN = "/usr/bin/grpc_cpp_plugin"

# Import roots, in protoc's -I order; the first one containing a file decides its import path.
_PROTO_ROOT = "proto"

def _import_root(path):
    """The -I directory a repo-relative .proto path is resolved from ("" is the repo root)."""
    if path.startswith(_PROTO_ROOT + "/"):
        return _PROTO_ROOT
    return ""

def dash_proto_library(name, srcs, deps = [], grpc = False, visibility = None, **kwargs):
    """Generates C++ (and optionally gRPC) code for `srcs` and compiles it into cc_library `name`.

    Args:
      name: name of the cc_library; `<name>_protos` (the .proto files, for importers) and
        `<name>_gen` (the genrule) are created too.
      srcs: .proto files of this package.
      deps: dash_proto_library targets whose .proto files `srcs` import (full labels).
      grpc: also run grpc_cpp_plugin and link gRPC (CMake's GRPC option).
      visibility: visibility of the cc_library and the proto filegroup.
      **kwargs: passed to the cc_library (e.g. tags).
    """
    pkg = native.package_name()
    roots = {}
    hdrs = []
    cc_srcs = []
    for src in srcs:
        if not src.endswith(".proto"):
            fail("dash_proto_library: %s is not a .proto file" % src)
        full = pkg + "/" + src if pkg else src
        roots[_import_root(full)] = True
        base = src[:-len(".proto")]
        exts = [".pb"] + ([".grpc.pb"] if grpc else [])
        for ext in exts:
            hdrs.append(base + ext + ".h")
            cc_srcs.append(base + ext + ".cc")
    if len(roots) != 1:
        fail("dash_proto_library: all srcs of %s must share one import root" % name)
    root = roots.keys()[0]

    # The package's output directory, seen from the import root: protoc writes <import path>.pb.*
    # under --cpp_out, so --cpp_out must be $(GENDIR)/<root>.
    if root == "":
        out_dir = "$(GENDIR)"
        includes = []
    elif root == pkg:
        out_dir = "$(GENDIR)/" + root
        includes = ["."]
    else:
        fail("dash_proto_library: put %s in package //%s or outside %s/" % (name, root, root))
    outs = hdrs + cc_srcs

    proto_deps = [d + "_protos" for d in deps]

    # All .proto files this library needs (its own + everything they import), for importers.
    native.filegroup(
        name = name + "_protos",
        srcs = srcs + proto_deps,
        visibility = visibility,
    )

    cmd = " ".join([
        _PROTOC,
        "-I" + _PROTO_ROOT,
        "-I.",
        "--cpp_out=" + out_dir,
    ] + ([
        "--grpc_out=" + out_dir,
        "--plugin=protoc-gen-grpc=" + _GRPC_CPP_PLUGIN,
    ] if grpc else []) + [
        "$(location %s)" % src
        for src in srcs
    ])

    native.genrule(
        name = name + "_gen",
        srcs = srcs + proto_deps,
        outs = outs,
        cmd = cmd,
        message = "protoc %s" % " ".join(srcs),
        visibility = ["//visibility:private"],
    )

    native.cc_library(
        name = name,
        srcs = cc_srcs,
        hdrs = hdrs,
        includes = includes,
        deps = deps + ["@system//:protobuf"] + (["@system//:grpcpp"] if grpc else []),
        visibility = visibility,
        **kwargs
    )
