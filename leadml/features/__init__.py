"""leadml.features"""
