"""gradprobe.theory"""
