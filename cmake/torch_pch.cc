// Owner of the shared precompiled LibTorch header; no code of its own.
