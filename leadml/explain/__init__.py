"""leadml.explain"""
