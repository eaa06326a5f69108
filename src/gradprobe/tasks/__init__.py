"""gradprobe.tasks"""
