"""gradprobe.probes"""
