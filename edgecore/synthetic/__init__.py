"""A demo retail catalogue that looks like kiosk photos, and the import of real photo folders.

``products`` defines the demo stores, ``packaging`` draws each product once, ``photos``
"photographs" it, ``generator`` writes a store's folder; ``folder`` reads and writes the
``<edge>/<SKU>/*.jpg`` + ``catalogue.json`` layout both paths share (and imports real
photos into it), and ``upload`` turns such a folder into an immutable dataset version.
"""
