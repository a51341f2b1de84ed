"""The content service: copies with revisions and a review workflow, the lint (channel limits and
advertising-law rule packs), sandboxed templates, briefs and A/B experiments."""
