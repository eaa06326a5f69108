"""gradprobe.nets"""
