"""VL-PET: vision-and-language parameter-efficient tuning via granularity control (ICCV 2023)."""

__version__ = "0.1.0"
