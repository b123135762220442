"""Pictures of what happened and what will: self-contained HTML and SVG, no Pulumi, no network."""
