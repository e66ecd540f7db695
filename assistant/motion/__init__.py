"""The motion core, one file a stage: clip input, face landmarks and crop, flow and head-motion removal, the MMC
map, the region table, and `analyze` that runs them in order."""

from assistant.motion.analyze import MotionConfig, analyze_clip, analyze_frames

__all__ = ["MotionConfig", "analyze_clip", "analyze_frames"]
