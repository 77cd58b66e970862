"""The book's model families, one module each; :func:`diffusion_lib.family.families` imports
every module here and each registers its family. A reader's family registers itself the same
way (:func:`diffusion_lib.family.register_family`) from wherever it lives."""
