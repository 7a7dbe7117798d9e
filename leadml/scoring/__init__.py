"""leadml.scoring"""
