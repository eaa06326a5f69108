"""gradprobe.training"""
