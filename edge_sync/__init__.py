"""What moves between edge and core: data uplink, core receiver, model delivery controller."""
