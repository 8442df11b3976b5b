"""Command-line tools: nvenc, nvdec, nvinfo. They parse options, call the library and report."""
