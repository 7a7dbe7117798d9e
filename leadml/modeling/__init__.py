"""leadml.modeling"""
