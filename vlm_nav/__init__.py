"""vlm_nav: find and approach things by what a vision-language model sees."""

__version__ = '0.1.0'
